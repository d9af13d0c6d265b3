//! The judges' prompt templates of `ragback eval` (`prompts/eval/*.tera`, Tera 2), each with the
//! SHA-256 of its file, recorded in every judgment so that a changed prompt is never mixed with
//! the old one's verdicts.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::{Context, Tera};

use crate::prompt::error_chain;

/// The templates a judge needs, by name without `.tera`.
pub const PAIRWISE: [&str; 2] = ["pairwise_system", "pairwise_user"];
/// The moderation judge's templates.
pub const MODERATION: [&str; 2] = ["moderation_system", "moderation_user"];

/// Loaded templates.
#[derive(Debug, Clone)]
pub struct EvalPrompts {
    tera: Tera,
    sha256: String,
}

impl EvalPrompts {
    /// Loads `names` from `dir`; the combined SHA-256 covers every file, in the order given.
    pub fn load(dir: &Path, names: &[&str]) -> Result<Self, String> {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        let mut hasher = Sha256::new();
        for name in names {
            let path = dir.join(format!("{name}.tera"));
            let source = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(source.as_bytes());
            tera.add_raw_template(name, &source)
                .map_err(|e| format!("{}: {}", path.display(), error_chain(&e)))?;
        }
        Ok(Self {
            tera,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// The SHA-256 of the templates.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Renders template `name` with `data`; everything inserted is data, never evaluated.
    pub fn render(&self, name: &str, data: &impl Serialize) -> Result<String, String> {
        let context = Context::from_serialize(data).map_err(|e| error_chain(&e))?;
        self.tera
            .render(name, &context)
            .map_err(|e| error_chain(&e))
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes` (digests).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
