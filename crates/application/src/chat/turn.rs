//! The whole reply at once: [`ChatService::generate`].

use ragback_domain::clean_reply;

use super::attempt::{AttemptError, UsageTally, generation_error};
use super::record::{Reply, TurnRecord};
use super::request::Prepared;
use super::{ChatService, GenerateCommand, GenerateError, GenerateFailure, Generation};
use crate::retry::retry;

impl ChatService {
    /// Generates the character's next line for this chat.
    #[tracing::instrument(
        skip_all,
        fields(
            user = cmd.user.id.as_ref().map(|id| id.as_str()),
            character = cmd.character.id.as_ref().map(|id| id.as_str()),
            messages = cmd.messages.len(),
            variant = tracing::field::Empty,
        )
    )]
    pub async fn generate(&self, cmd: GenerateCommand) -> Result<Generation, GenerateFailure> {
        let record = TurnRecord::start();
        let turn = self.turn_deadline(record.started(), cmd.timeout);
        let variant = self.variant_of(&cmd);
        let guard = self.guard_for(&variant);
        let screen = self.screen(&cmd, guard.as_ref()).await;
        let (retrieval, prepared) = self.prepare(cmd, &variant, guard, turn.at).await;
        let replied = match prepared {
            Ok(mut prepared) => {
                prepared.instruct(&screen);
                let reply = self.guarded_reply(&prepared, turn, &screen).await;
                if reply.is_ok() {
                    self.queue_summary(prepared.summary_job.take()).await;
                }
                reply
            }
            Err(error) => Err(error),
        };
        match replied {
            Ok(reply) => Ok(record.finish(retrieval, reply)),
            Err(error) => {
                record.fail(&error, &variant.name);
                Err(GenerateFailure {
                    error,
                    retrieval: Some(retrieval),
                })
            }
        }
    }

    /// Asks the model until a reply is left once cleaned, within the attempts and the deadline.
    pub(super) async fn reply(
        &self,
        prepared: &Prepared,
        turn: super::request::Deadline,
    ) -> Result<Reply, GenerateError> {
        let started = tokio::time::Instant::now();
        let deadline = self.model_deadline(turn);
        let usage = UsageTally::default();
        let answered = retry(&self.settings.retry, deadline.at, "model call", || async {
            let completion = self.model.complete(&prepared.request).await?;
            usage.add(completion.usage);
            let text = clean_reply(&completion.text, &prepared.speaker, &prepared.listener);
            if text.is_empty() {
                return Err(AttemptError::Empty);
            }
            let cut = completion.finish_reason.as_deref() == Some("length");
            Ok((text, completion.model, cut))
        })
        .await;
        let (text, model, cut) =
            answered.map_err(|error| generation_error(error, deadline, self.model.slow_hint()))?;
        Ok(Reply {
            text,
            model,
            usage: usage.total(),
            render: prepared.render,
            prompt: prepared.stats,
            llm: started.elapsed(),
            first_token: None,
            variant: prepared.variant.clone(),
            lore: prepared.lore.clone(),
            safety: None,
            cut,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ragback_domain::{Role, Scenario};
    use tokio::time::Instant;

    use super::super::fixtures::{command, service, service_with, settings};
    use super::*;
    use crate::chat::ReplyEvent;
    use crate::ports::{ChatModelError, PromptRole};
    use crate::retrieval::RetrievalStatus;
    use crate::testing::{ScriptedChatModel, SilentChatModel};
    use crate::{ChatSettings, GenerationOverrides};

    #[tokio::test]
    async fn a_reply_uses_facts_history_window_and_cleans_the_prefix() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply(
            "Blaze: *grins* A marathon? Dope.",
        )]));
        let svc = service(model.clone()).await;
        let cmd = command(&[
            (Role::User, "old message"),
            (Role::Character, "*nods* sup"),
            (Role::User, "I ran the marathon"),
        ]);

        let generation = svc.generate(cmd).await.unwrap();

        assert_eq!(generation.text, "*grins* A marathon? Dope.");
        assert_eq!(generation.retrieval, RetrievalStatus::Ok);
        assert_eq!(generation.facts.len(), 1);
        let t = generation.timings;
        assert!(t.total >= t.embed + t.search + t.render + t.llm);

        let request = &model.requests()[0];
        let system = &request.messages[0].content;
        assert!(system.contains("fact: ran the london marathon"));
        assert!(
            system.contains("calls John bro"),
            "card macros resolved: {system}"
        );
        assert!(
            system.contains("scenario: A rooftop."),
            "card scenario used: {system}"
        );
        let turns: Vec<_> = request.messages[1..]
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            turns,
            [
                (PromptRole::Assistant, "*nods* sup"),
                (PromptRole::User, "I ran the marathon")
            ]
        );
        assert_eq!(request.params.model, "default/model");
    }

    #[tokio::test]
    async fn request_overrides_win_over_defaults() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply("yo")]));
        let svc = service(model.clone()).await;
        let mut cmd = command(&[(Role::User, "hey")]);
        cmd.generation = GenerationOverrides {
            model: Some("other/model".into()),
            temperature: Some(0.1),
            top_p: None,
            max_tokens: Some(50),
            seed: Some(42),
        };
        cmd.scenario = Some(Scenario::parse("A bar.").unwrap());

        svc.generate(cmd).await.unwrap();

        let request = &model.requests()[0];
        assert_eq!(request.params.model, "other/model");
        assert_eq!(request.params.temperature, Some(0.1));
        assert_eq!(request.params.top_p, Some(0.95));
        assert_eq!(request.params.max_tokens, Some(50));
        assert_eq!(request.params.seed, Some(42));
        assert!(request.messages[0].content.contains("scenario: A bar."));
    }

    /// Says which template it is, then the plain prompt.
    struct Labelled(&'static str);

    impl crate::ports::PromptRenderer for Labelled {
        fn render(
            &self,
            context: &crate::ports::PromptContext<'_>,
        ) -> Result<crate::ports::RenderedPrompt, crate::ports::PromptError> {
            let mut prompt = crate::testing::PlainRenderer.render(context)?;
            prompt.system = format!("template {}\n{}", self.0, prompt.system);
            Ok(prompt)
        }
    }

    #[tokio::test]
    async fn the_variant_chooses_model_sampling_routing_template_and_retrieval() {
        use crate::ports::{GenerationParams, ModelRouting, ReasoningBudget};
        use crate::retrieval::RetrievalOverrides;
        use crate::variants::{Split, Variant, VariantSet, Variants};

        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::reply("yo"),
            ScriptedChatModel::reply("yo"),
            ScriptedChatModel::reply("yo"),
        ]));
        let base = service(model.clone()).await;
        let b = Variant {
            name: "b".into(),
            params: GenerationParams {
                model: "model/b".into(),
                temperature: Some(0.3),
                top_p: None,
                max_tokens: Some(64),
                seed: None,
                routing: ModelRouting {
                    fallback_models: vec!["model/b-fallback".into()],
                    reasoning: Some(ReasoningBudget::MaxTokens(128)),
                    ..Default::default()
                },
                cache_control: false,
            },
            renderer: Arc::new(Labelled("b")),
            // Retrieval off: the fact john has must not reach b's prompt.
            retrieval: RetrievalOverrides {
                enabled: Some(false),
                ..Default::default()
            },
            guard: None,
        };
        let default = Variant {
            name: "default".into(),
            params: settings().defaults,
            renderer: Arc::new(Labelled("a")),
            retrieval: RetrievalOverrides::default(),
            guard: None,
        };
        let everyone_in_b = Split::new("s", vec![("default".into(), 0), ("b".into(), 100)]);
        let set = VariantSet::new(vec![default, b], Some(everyone_in_b.unwrap())).unwrap();
        let svc = base.with_variants(Variants::new(set));

        // john is assigned b by the split.
        let by_split = svc
            .generate(command(&[(Role::User, "I ran the marathon")]))
            .await;
        assert_eq!(by_split.unwrap().variant, "b");
        // Asked for by name: the default, whatever the split says.
        let mut asked = command(&[(Role::User, "I ran the marathon")]);
        asked.variant = Some(svc.variants().current().named("default").unwrap());
        let generation = svc.generate(asked).await.unwrap();
        assert_eq!(generation.variant, "default");
        // A request's own parameters win over the variant's.
        let mut own = command(&[(Role::User, "hey")]);
        own.generation.temperature = Some(1.1);
        svc.generate(own).await.unwrap();

        let requests = model.requests();
        let b_request = &requests[0];
        assert_eq!(b_request.params.model, "model/b");
        assert_eq!(b_request.params.temperature, Some(0.3));
        assert_eq!(b_request.params.max_tokens, Some(64));
        assert_eq!(
            b_request.params.routing.fallback_models,
            ["model/b-fallback"]
        );
        assert!(b_request.messages[0].content.starts_with("template b\n"));
        assert!(
            !b_request.messages[0].content.contains("marathon"),
            "b retrieves nothing"
        );
        let a_request = &requests[1];
        assert_eq!(a_request.params.model, "default/model");
        assert!(a_request.params.routing.is_empty());
        assert!(a_request.messages[0].content.starts_with("template a\n"));
        assert!(
            a_request.messages[0]
                .content
                .contains("fact: ran the london marathon")
        );
        assert_eq!(requests[2].params.temperature, Some(1.1));
        assert_eq!(requests[2].params.max_tokens, Some(64));
    }

    #[tokio::test]
    async fn a_greeting_sends_the_opening_cue_and_skips_retrieval() {
        let model = Arc::new(ScriptedChatModel::new([ScriptedChatModel::reply(
            "*waves* Yo!",
        )]));
        let svc = service(model.clone()).await;

        let generation = svc.generate(command(&[])).await.unwrap();

        assert_eq!(generation.retrieval, RetrievalStatus::Skipped);
        let request = &model.requests()[0];
        assert_eq!(request.messages.len(), 2);
        assert_eq!(request.messages[1].role, PromptRole::User);
        assert_eq!(request.messages[1].content, "open the chat");
    }

    #[tokio::test]
    async fn an_empty_reply_is_asked_again_until_the_attempts_run_out() {
        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::reply("Blaze:"),
            ScriptedChatModel::reply("  "),
            ScriptedChatModel::reply(""),
        ]));
        let svc = service(model.clone()).await;

        let err = svc
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();

        assert_eq!(err.error, GenerateError::EmptyReply { attempts: 3 });
        assert_eq!(model.requests().len(), 3, "the same attempts as a stream");
    }

    #[tokio::test]
    async fn an_empty_reply_then_a_good_one_succeeds_with_summed_usage() {
        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::reply(""),
            ScriptedChatModel::reply("yo"),
        ]));
        let svc = service(model).await;

        let generation = svc.generate(command(&[(Role::User, "hey")])).await.unwrap();

        assert_eq!(generation.text, "yo");
        assert_eq!(generation.usage.unwrap().completion_tokens, 10);
    }

    #[tokio::test]
    async fn transient_model_errors_are_retried_and_permanent_ones_reported() {
        let model = Arc::new(ScriptedChatModel::new([
            Err(ChatModelError::unavailable("500")),
            ScriptedChatModel::reply("yo"),
        ]));
        let svc = service(model.clone()).await;
        assert_eq!(
            svc.generate(command(&[(Role::User, "hey")]))
                .await
                .unwrap()
                .text,
            "yo"
        );
        assert_eq!(model.requests().len(), 2);

        let rejected = ChatModelError::Rejected {
            status: 400,
            message: "bad model".into(),
        };
        let model = Arc::new(ScriptedChatModel::new([Err(rejected.clone())]));
        let err = service(model)
            .await
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GenerateError::ModelFailed {
                attempts: 1,
                source: rejected
            }
        );
    }

    #[tokio::test]
    async fn a_missing_key_is_reported_as_not_configured() {
        let model = Arc::new(ScriptedChatModel::new([Err(
            ChatModelError::NotConfigured("set RAGBACK_LLM__API_KEY".into()),
        )]));
        let err = service(model)
            .await
            .generate(command(&[(Role::User, "hey")]))
            .await
            .unwrap_err();
        assert_eq!(
            err.error,
            GenerateError::ModelNotConfigured("set RAGBACK_LLM__API_KEY".into())
        );
        // Retrieval ran before the model failed, and the failure says how it went.
        let retrieval = err.retrieval.expect("retrieval ran");
        assert_eq!(retrieval.status, RetrievalStatus::Ok);
    }

    #[tokio::test(start_paused = true)]
    async fn the_turn_deadline_is_the_earliest_of_command_request_and_model_limits() {
        // Model stage 5 s; whole turn 3 s.
        let silent = service_with(
            Arc::new(SilentChatModel),
            ChatSettings {
                request_timeout: Duration::from_secs(3),
                ..settings()
            },
        )
        .await;
        let cases = [
            (None, Duration::from_secs(3)),
            (
                Some(Duration::from_millis(1_500)),
                Duration::from_millis(1_500),
            ),
            (Some(Duration::from_secs(60)), Duration::from_secs(3)),
        ];
        for (asked, expected) in cases {
            let mut cmd = command(&[(Role::User, "hey")]);
            cmd.timeout = asked;
            let started = Instant::now();
            let failure = silent.generate(cmd.clone()).await.unwrap_err();
            assert!(
                matches!(failure.error, GenerateError::DeadlineExceeded { deadline, .. } if deadline == expected),
                "{asked:?}: {:?}",
                failure.error
            );
            assert_eq!(started.elapsed(), expected, "{asked:?}");

            let mut events = silent.generate_stream(cmd);
            let mut last = None;
            while let Some(event) = events.recv().await {
                last = Some(event);
            }
            assert!(
                matches!(last, Some(ReplyEvent::Failed(GenerateError::DeadlineExceeded { deadline, .. })) if deadline == expected),
                "stream {asked:?}: {last:?}"
            );
        }
    }
}
