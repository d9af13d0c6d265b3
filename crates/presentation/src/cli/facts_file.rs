//! Reading facts to seed: the JSON seeding file, or a text file with one fact per line.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use ragback_application::ports::{EmbeddedFact, StoredFact};
use ragback_domain::{CharacterId, Fact, FactId, FactOwner, FactText, OwnerKind, UserId};
use serde::{Deserialize, Serialize};

use crate::wire::ProvenanceFields;

/// `{"users": [{"id", "facts": […]}], "characters": [{"id", "facts": […]}]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsFile {
    /// Facts per user.
    #[serde(default)]
    pub users: Vec<OwnerFacts>,
    /// Facts per character.
    #[serde(default)]
    pub characters: Vec<OwnerFacts>,
}

/// One owner's facts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerFacts {
    /// The owner's id.
    pub id: String,
    /// The facts.
    pub facts: Vec<String>,
}

/// A fact read from an export.
#[derive(Debug)]
pub enum ImportedFact {
    /// With its vector and model: stored as it is.
    Embedded(EmbeddedFact),
    /// Text only: embedded again.
    Text(Fact),
}

/// One line of `ragback facts export`: a fact, its owner, its provenance and (when known) its
/// vector.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedFact {
    /// The fact id (checked against owner and text on import).
    pub id: String,
    /// `user` or `character`.
    pub owner: String,
    /// The owner's id.
    pub owner_id: String,
    /// The fact.
    pub text: String,
    /// Where it came from and when (kept on import).
    #[serde(flatten)]
    pub provenance: ProvenanceFields,
    /// The document embedding; without it (or without `model`), import embeds the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// The model that made `vector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl From<&StoredFact> for ExportedFact {
    fn from(stored: &StoredFact) -> Self {
        let fact = &stored.fact;
        Self {
            id: fact.id.to_string(),
            owner: fact.owner.kind().as_str().to_owned(),
            owner_id: fact.owner.id().to_owned(),
            text: fact.text.as_str().to_owned(),
            provenance: ProvenanceFields::of(fact.provenance.as_ref()),
            vector: stored.vector.clone(),
            model: stored.model.clone(),
        }
    }
}

impl ExportedFact {
    /// The fact, with its vector when vector and model are known; refuses an id that does not
    /// match owner and text.
    pub fn into_fact(self) -> anyhow::Result<ImportedFact> {
        let kind: OwnerKind = self.owner.parse()?;
        let owner = FactOwner::from_parts(kind, &self.owner_id).context("owner_id")?;
        let mut fact = Fact::new(owner, FactText::parse(self.text).context("text")?);
        fact.provenance = self.provenance.to_provenance()?;
        let id: FactId = self.id.parse().context("id")?;
        if id != fact.id {
            bail!(
                "id {id} does not match the owner and text (expected {})",
                fact.id
            );
        }
        Ok(match self.vector.zip(self.model) {
            Some((vector, model)) => ImportedFact::Embedded(EmbeddedFact {
                fact,
                vector,
                model,
            }),
            None => ImportedFact::Text(fact),
        })
    }
}

/// Facts read from a file, with what was skipped.
#[derive(Debug, Default)]
pub struct ReadFacts {
    /// Valid, distinct facts in file order.
    pub facts: Vec<Fact>,
    /// Blank entries skipped.
    pub blank: usize,
    /// Repeated entries skipped.
    pub duplicates: usize,
}

impl ReadFacts {
    fn push(
        &mut self,
        owner: &FactOwner,
        text: &str,
        seen: &mut HashSet<ragback_domain::FactId>,
        line: &str,
    ) -> anyhow::Result<()> {
        if text.trim().is_empty() {
            self.blank += 1;
            return Ok(());
        }
        let text = FactText::parse(text).with_context(|| format!("{line}: invalid fact"))?;
        let fact = Fact::new(owner.clone(), text);
        if seen.insert(fact.id) {
            self.facts.push(fact);
        } else {
            self.duplicates += 1;
        }
        Ok(())
    }
}

/// Reads `path`: JSON (the seeding format) when it ends in `.json`, else one fact per line for
/// `owner`, which is then required.
pub fn read_facts(path: &Path, owner: Option<FactOwner>) -> anyhow::Result<ReadFacts> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut read = ReadFacts::default();
    let mut seen = HashSet::new();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        if owner.is_some() {
            bail!(
                "--user/--character apply to text files; {} names its owners itself",
                path.display()
            );
        }
        let file: FactsFile = serde_json::from_str(&content)
            .with_context(|| format!("{} is not a facts file ({{\"users\": [{{\"id\", \"facts\"}}], \"characters\": [...]}})", path.display()))?;
        for (i, user) in file.users.iter().enumerate() {
            let owner = FactOwner::User(
                UserId::parse(user.id.as_str()).with_context(|| format!("users[{i}].id"))?,
            );
            for (j, text) in user.facts.iter().enumerate() {
                read.push(&owner, text, &mut seen, &format!("users[{i}].facts[{j}]"))?;
            }
        }
        for (i, character) in file.characters.iter().enumerate() {
            let owner = FactOwner::Character(
                CharacterId::parse(character.id.as_str())
                    .with_context(|| format!("characters[{i}].id"))?,
            );
            for (j, text) in character.facts.iter().enumerate() {
                read.push(
                    &owner,
                    text,
                    &mut seen,
                    &format!("characters[{i}].facts[{j}]"),
                )?;
            }
        }
    } else {
        let Some(owner) = owner else {
            bail!(
                "{} is a text file: say whose facts they are with --user ID or --character ID",
                path.display()
            );
        };
        for (n, line) in content.lines().enumerate() {
            read.push(
                &owner,
                line,
                &mut seen,
                &format!("{}:{}", path.display(), n + 1),
            )?;
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_format_is_read_with_blanks_and_duplicates_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("facts.json");
        std::fs::write(
            &path,
            r#"{"users": [{"id": "john", "facts": ["a", " ", "a", "b"]}],
                "characters": [{"id": "blaze", "facts": ["a"]}]}"#,
        )
        .unwrap();

        let read = read_facts(&path, None).unwrap();

        assert_eq!(read.facts.len(), 3, "john's a, b and blaze's a");
        assert_eq!((read.blank, read.duplicates), (1, 1));
    }

    #[test]
    fn a_text_file_needs_an_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("facts.txt");
        std::fs::write(&path, "likes jazz\n\nlikes jazz\nowns a cat\n").unwrap();

        assert!(read_facts(&path, None).is_err());
        let owner = FactOwner::User(UserId::parse("jane").unwrap());
        let read = read_facts(&path, Some(owner)).unwrap();
        assert_eq!(read.facts.len(), 2);
        assert_eq!((read.blank, read.duplicates), (1, 1));
    }

    #[test]
    fn the_shipped_demo_data_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/facts.json");
        let read = read_facts(&path, None).unwrap();
        assert!(read.facts.len() >= 10);
        assert_eq!(read.duplicates, 0);
    }
}
