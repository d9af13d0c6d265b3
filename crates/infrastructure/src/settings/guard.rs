//! `RAGBACK_GUARD__*`: the reply guard — what is checked, what is done about each tag, and the
//! texts it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ragback_application::bounds::InvalidSetting;
use ragback_application::guard::{DEFAULT_DEFLECTION, DEFAULT_REFERRAL, GuardPolicy, TagAction};
use ragback_application::ports::GuardTag;
use serde::Deserialize;

use super::List;

/// The reply guard's settings (`[guard]`, `RAGBACK_GUARD__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Check every reply, and the user's message, before the reply is returned.
    pub enabled: bool,
    /// When a guard cannot answer: replace the reply (`true`) or let it through.
    pub fail_closed: bool,
    /// What to do per tag (`RAGBACK_GUARD__ACTIONS__VIOLENCE=pass`): `pass`, `regenerate` or
    /// `replace`.
    pub actions: BTreeMap<String, String>,
    /// In-character deflections per tag (`RAGBACK_GUARD__DEFLECTIONS__REAL_MEETING=…`).
    pub deflections: BTreeMap<String, String>,
    /// The deflection of a tag without its own.
    pub deflection: String,
    /// Shown beside the reply when the user's message shows self-harm intent.
    pub referral: String,
    /// Phrases a reply must not hold: regular expressions, case-insensitive (the `banned` tag).
    pub banned: List,
    /// The trained classifier (`ragback guard train`); unset or missing: the rules alone.
    pub classifier: Option<PathBuf>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fail_closed: true,
            actions: BTreeMap::new(),
            deflections: BTreeMap::new(),
            deflection: DEFAULT_DEFLECTION.into(),
            referral: DEFAULT_REFERRAL.into(),
            banned: List::default(),
            classifier: Some(PathBuf::from("data/safety/classifier.json")),
        }
    }
}

/// The tag of a settings key.
fn tag(section: &str, key: &str) -> Result<GuardTag, InvalidSetting> {
    GuardTag::parse(key).ok_or_else(|| {
        let known: Vec<&str> = GuardTag::ALL.iter().map(|t| t.key()).collect();
        InvalidSetting::new(
            format!("{section}.{key}"),
            format!("no tag `{key}`; the tags are {}", known.join(", ")),
        )
    })
}

impl GuardConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.policy().map(|_| ())
    }

    /// The policy these settings describe.
    pub fn policy(&self) -> Result<GuardPolicy, InvalidSetting> {
        let mut actions = BTreeMap::new();
        for (key, action) in &self.actions {
            let parsed = TagAction::parse(action.trim()).ok_or_else(|| {
                InvalidSetting::new(
                    format!("actions.{key}"),
                    format!("`{action}` is not an action: pass, regenerate or replace"),
                )
            })?;
            actions.insert(tag("actions", key)?, parsed);
        }
        let mut deflections = BTreeMap::new();
        for (key, text) in &self.deflections {
            if text.trim().is_empty() {
                return Err(InvalidSetting::new(
                    format!("deflections.{key}"),
                    "must not be blank",
                ));
            }
            deflections.insert(tag("deflections", key)?, text.trim().to_owned());
        }
        for (name, text) in [
            ("deflection", &self.deflection),
            ("referral", &self.referral),
        ] {
            if text.trim().is_empty() {
                return Err(InvalidSetting::new(name, "must not be blank"));
            }
        }
        Ok(GuardPolicy {
            actions,
            deflections,
            deflection: self.deflection.trim().to_owned(),
            fail_closed: self.fail_closed,
            referral: self.referral.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_deflections_name_real_tags() {
        let mut config = GuardConfig::default();
        config.actions.insert("violence".into(), "pass".into());
        config
            .deflections
            .insert("real_meeting".into(), "*laughs* Nice try.".into());
        let policy = config.policy().unwrap();
        assert_eq!(policy.action(GuardTag::Violence, false), TagAction::Pass);
        assert_eq!(
            policy.deflection(GuardTag::RealMeeting),
            "*laughs* Nice try."
        );
        config.actions.insert("gore".into(), "pass".into());
        let error = config.validate().unwrap_err();
        assert!(error.problem.contains("no tag `gore`"), "{error:?}");
        let mut config = GuardConfig::default();
        config.actions.insert("hate".into(), "ignore".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .problem
                .contains("pass, regenerate or replace")
        );
    }
}
