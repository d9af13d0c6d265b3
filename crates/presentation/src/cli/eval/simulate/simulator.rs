//! The user simulator: any OpenAI-compatible model (`RAGBACK_EVAL__SIMULATOR__*`), or the local
//! chat model as a labelled smoke test, prompted by `prompts/eval/simulator_*.tera` to write the
//! user's next message; each answer read and checked for the simulator's known failures.

use std::path::Path;
use std::time::Duration;

use ragback_application::evaluation::simulation::{TurnContext, check_turn};
use ragback_application::ports::{ChatRequest, GenerationParams, PromptMessage, PromptRole};
use ragback_infrastructure::{Judge, Settings, build_simulator};
use ragback_integrations::eval_prompts::{EvalPrompts, SIMULATOR};
use serde_json::json;

use super::super::calls::{Failure, FailureKind, Prices, Retries, complete_within, retrying};
use super::super::dialogues::{ContextMessage, Dialogue};
use super::super::rows::{Spoken, Status, Turn, Usage};
use super::{UserTurn, user_message};

/// The simulator, ready to write user turns.
pub(super) struct Simulator {
    model: Judge,
    name: String,
    prompts: EvalPrompts,
    timeout: Duration,
    max_tokens: u32,
    temperature: f32,
    prices: Prices,
}

impl Simulator {
    /// The simulator the configuration names (`model` overrides its model).
    pub(super) fn new(
        settings: &Settings,
        prompts: &Path,
        model: Option<&str>,
        prices: Prices,
    ) -> anyhow::Result<Self> {
        let mut settings = settings.clone();
        if let Some(model) = model {
            settings.eval.simulator.model = model.to_owned();
        }
        let judge = build_simulator(&settings)?;
        if judge.smoke_test {
            eprintln!(
                "SMOKE-TEST SIMULATOR: no RAGBACK_EVAL__SIMULATOR__BASE_URL, so the local chat \
                 model ({}) plays the user. Its conversations test the pipeline, not the arms.",
                judge.model_name
            );
        }
        let simulator = &settings.eval.simulator;
        Ok(Self {
            name: if judge.smoke_test {
                judge.model_name.clone()
            } else {
                simulator.model.clone()
            },
            model: judge,
            prompts: EvalPrompts::load(prompts, &SIMULATOR)?,
            timeout: simulator.timeout,
            max_tokens: simulator.max_tokens,
            temperature: simulator.temperature,
            prices,
        })
    }

    /// The model's name, as rows record it.
    pub(super) fn model_name(&self) -> &str {
        &self.name
    }

    /// The templates' hash.
    pub(super) fn prompt_sha256(&self) -> &str {
        self.prompts.sha256()
    }

    /// The user's next message after `messages` (message `index` of the conversation).
    pub(super) async fn turn(
        &self,
        seed: &Dialogue,
        messages: &[ContextMessage],
        index: usize,
        sim_seed: u64,
        spent: u32,
        retries: Retries,
    ) -> UserTurn {
        let mut row = Turn {
            key: String::new(),
            seed_dialogue: seed.id.clone(),
            arm: String::new(),
            sample: 0,
            index,
            role: "user".into(),
            status: Status::Ok,
            attempts: 0,
            text: None,
            ends: false,
            drifts: Vec::new(),
            simulator_seed: Some(sim_seed),
            prompt_sha256: Some(self.prompts.sha256().to_owned()),
            model: Some(self.name.clone()),
            smoke_test_simulator: self.model.smoke_test,
            variant: None,
            latency_ms: None,
            usage: None,
            cost_usd: None,
            error: None,
        };
        let name = |role: &str| {
            let party = if role == "user" {
                &seed.user
            } else {
                &seed.character
            };
            party["name"].as_str().unwrap_or(role).to_owned()
        };
        let persona = seed.extra.get("persona").cloned().unwrap_or_default();
        let data = json!({
            "user": seed.user, "character": seed.character, "scenario": seed.scenario,
            "description": persona["description"], "facts": persona["facts"],
            "messages": messages.iter().map(|m| Spoken { speaker: name(&m.role), text: m.text.clone() }).collect::<Vec<_>>(),
        });
        let rendered = self
            .prompts
            .render("simulator_system", &data)
            .and_then(|system| Ok((system, self.prompts.render("simulator_user", &data)?)));
        let (system, user) = match rendered {
            Ok(parts) => parts,
            Err(error) => {
                row.status = Status::Invalid;
                row.error = Some(format!("the simulator's template: {error}"));
                return UserTurn(row);
            }
        };
        let request = ChatRequest {
            messages: vec![
                PromptMessage {
                    role: PromptRole::System,
                    content: system.clone(),
                },
                PromptMessage {
                    role: PromptRole::User,
                    content: user,
                },
            ],
            params: GenerationParams {
                model: self.name.clone(),
                temperature: Some(self.temperature),
                top_p: None,
                max_tokens: Some(self.max_tokens),
                seed: Some(sim_seed),
                routing: Default::default(),
                cache_control: false,
            },
            json_schema: None,
        };
        let started = std::time::Instant::now();
        let (result, attempts) = retrying(retries, spent, || {
            complete_within(
                &*self.model.model,
                &request,
                self.timeout,
                "simulator",
                |e| Failure::upstream(&e),
            )
        })
        .await;
        row.attempts = attempts;
        row.latency_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        match result {
            Ok(completion) => {
                let usage = Usage::from(completion.usage);
                row.cost_usd =
                    self.prices
                        .cost(&self.name, usage.prompt_tokens, usage.completion_tokens);
                row.usage = Some(usage);
                let (text, ends) = user_message(&completion.text, &seed.user);
                if let Some(text) = &text {
                    let user_before: Vec<&str> = messages
                        .iter()
                        .filter(|m| m.role == "user")
                        .map(|m| m.text.as_str())
                        .collect();
                    let character = name("character");
                    row.drifts = check_turn(
                        text,
                        &TurnContext {
                            character: &character,
                            instructions: &system,
                            character_last: messages
                                .iter()
                                .rev()
                                .find(|m| m.role == "character")
                                .map(|m| m.text.as_str()),
                            user_before: &user_before,
                        },
                    );
                }
                row.text = text;
                row.ends = ends;
            }
            Err(failure) => {
                row.status = match failure.kind {
                    FailureKind::Transient => Status::ApiError,
                    FailureKind::Refused => Status::Refused,
                    FailureKind::Permanent => Status::Invalid,
                };
                row.error = Some(failure.message);
            }
        }
        UserTurn(row)
    }
}
