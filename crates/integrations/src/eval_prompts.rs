//! The judges' prompt templates of `ragback eval` (`prompts/eval/*.tera`): which templates each
//! judge needs. Their SHA-256 is recorded in every judgment, so that a changed prompt is never
//! mixed with the old one's verdicts.

pub use crate::templates::{TemplateError, TemplateSet as EvalPrompts};

/// The templates a judge needs, by name without `.tera`.
pub const PAIRWISE: [&str; 2] = ["pairwise_system", "pairwise_user"];
/// The templates of the judge of whole simulated conversations (`pairwise --unit dialogue`).
pub const PAIRWISE_DIALOGUE: [&str; 2] = ["pairwise_dialogue_system", "pairwise_dialogue_user"];
/// The user simulator's templates (`ragback eval simulate`).
pub const SIMULATOR: [&str; 2] = ["simulator_system", "simulator_user"];
/// The moderation judge's templates.
pub const MODERATION: [&str; 2] = ["moderation_system", "moderation_user"];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    #[test]
    fn the_shipped_templates_render_data_literally() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/eval");
        let prompts = EvalPrompts::load(&dir, &PAIRWISE).unwrap();
        assert_eq!(prompts.sha256().len(), 64);
        let text = prompts
            .render(
                "pairwise_user",
                &serde_json::json!({
                    "character": {"name": "Blaze", "description": "{{ evil }}"},
                    "user": {"name": "John"},
                    "scenario": "A bar.",
                    "context": [{"speaker": "John", "text": "Hi {% raw %}"}],
                    "first": "*nods* Yo.", "second": "*grins* Hey!",
                }),
            )
            .unwrap();
        assert!(
            text.contains("{{ evil }}") && text.contains("Hi {% raw %}"),
            "{text}"
        );
        assert!(text.contains("<<<\n*nods* Yo.\n>>>"), "{text}");
        let other = EvalPrompts::load(&dir, &MODERATION).unwrap();
        assert_ne!(other.sha256(), prompts.sha256());
    }
}
