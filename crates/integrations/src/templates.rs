//! A set of Tera templates loaded from files, with one SHA-256 over them all: the judges' and the
//! memory extractor's prompts. Autoescaping is off (the output is a prompt, not HTML); everything
//! inserted is data, never evaluated.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::{Context, Tera};

use crate::digest::hex;
use crate::errors::chain;

/// A template that cannot be read, compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The template does not compile.
    #[error("{}: {}", path.display(), chain(source))]
    Compile {
        /// The file.
        path: PathBuf,
        /// Tera's error.
        #[source]
        source: tera::Error,
    },
    /// Rendering failed (a missing value, a bad filter argument).
    #[error("template {name}: {}", chain(source))]
    Render {
        /// The template.
        name: String,
        /// Tera's error.
        #[source]
        source: tera::Error,
    },
}

/// Loaded templates.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    tera: Tera,
    sha256: String,
}

impl TemplateSet {
    /// Loads `names` (each `{name}.tera`) from `dir`; the combined SHA-256 covers every file, in
    /// the order given.
    pub fn load(dir: &Path, names: &[&str]) -> Result<Self, TemplateError> {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        let mut hasher = Sha256::new();
        for name in names {
            let path = dir.join(format!("{name}.tera"));
            let source = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                path: path.clone(),
                source,
            })?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(source.as_bytes());
            tera.add_raw_template(name, &source)
                .map_err(|source| TemplateError::Compile { path, source })?;
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

    /// Renders template `name` with `data`.
    pub fn render(&self, name: &str, data: &impl Serialize) -> Result<String, TemplateError> {
        let render = |source| TemplateError::Render {
            name: name.to_owned(),
            source,
        };
        let context = Context::from_serialize(data).map_err(render)?;
        self.tera.render(name, &context).map_err(render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_or_missing_template_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TemplateSet::load(dir.path(), &["absent"]).unwrap_err();
        assert!(matches!(missing, TemplateError::Read { .. }), "{missing}");
        std::fs::write(dir.path().join("bad.tera"), "{{ unclosed").unwrap();
        let broken = TemplateSet::load(dir.path(), &["bad"]).unwrap_err();
        assert!(broken.to_string().contains("bad.tera"), "{broken}");
        std::fs::write(dir.path().join("ok.tera"), "{{ x | round }}").unwrap();
        let set = TemplateSet::load(dir.path(), &["ok"]).unwrap();
        let error = set
            .render("ok", &serde_json::json!({"x": "text"}))
            .unwrap_err();
        assert!(matches!(error, TemplateError::Render { .. }), "{error}");
    }
}
