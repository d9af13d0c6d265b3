//! One candidate against the owner's stored facts: a decision, and the changes it would make —
//! planned only. Nothing is written here; the extraction applies the changes of all candidates
//! together once every one is decided.

use ragback_domain::{Fact, FactOwner, FactText, Provenance};

use super::answer::{Verdict, parse_verdict};
use super::{Action, Candidate, CandidateKind, Decision, MemoryError, MemoryExtractor};
use crate::facts::Changes;
use crate::ports::{EmbeddedFact, Embedder, EmbeddingPurpose, FactQuery};
use crate::retry::retry;

/// The most earlier texts a fact keeps in its history (the newest are kept).
pub const MAX_HISTORY: usize = 10;

/// What one candidate is, before its decision.
pub(super) struct Proposal<'a> {
    /// The candidate as the model proposed it.
    pub candidate: &'a Candidate,
    /// Whose fact it would be.
    pub owner: FactOwner,
    /// Its text, validated.
    pub text: FactText,
    /// The provenance it would be stored with.
    pub provenance: Provenance,
}

impl MemoryExtractor {
    /// Compares one candidate with the owner's nearest facts and decides; the changes the
    /// decision makes are added to `changes`.
    pub(super) async fn decide(
        &self,
        embedder: &dyn Embedder,
        proposal: Proposal<'_>,
        changes: &mut Changes,
    ) -> Result<Decision, MemoryError> {
        let Proposal {
            candidate,
            owner,
            text,
            provenance,
        } = proposal;
        let input = [text.as_str().to_owned()];
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let vector = retry(
            &self.settings.retry,
            deadline,
            "candidate embedding",
            || embedder.embed(&input, EmbeddingPurpose::Document),
        )
        .await
        .map_err(MemoryError::Embed)?
        .into_iter()
        .next()
        .ok_or(MemoryError::NoVector)?;
        let model = embedder.model_id().to_owned();
        let nearest = self
            .store
            .search(FactQuery {
                vector: vector.clone(),
                owners: vec![owner.clone()],
                limit: self.settings.neighbours.max(1),
                model: model.clone(),
            })
            .await?;
        // Stored (if applied) with the vector it was compared by: embedded once.
        let stored = |provenance: Provenance| EmbeddedFact {
            fact: Fact::new(owner.clone(), text.clone()).with_provenance(provenance),
            vector: vector.clone(),
            model: model.clone(),
        };
        let new_id = Fact::new(owner.clone(), text.clone()).id;
        let decision = |action, target: Option<Fact>, fact_id, reason| Decision {
            action,
            text: text.as_str().to_owned(),
            owner: owner.clone(),
            target,
            fact_id,
            reason,
        };
        let best = nearest.first().map_or(f32::NEG_INFINITY, |f| f.score);
        let retraction = candidate.kind == CandidateKind::Retraction;
        if best >= self.settings.duplicate_threshold && !retraction {
            let known = nearest.into_iter().next().map(|f| f.fact);
            return Ok(decision(Action::Noop, known, None, "already known"));
        }
        let related: Vec<Fact> = nearest
            .into_iter()
            .filter(|f| f.score >= self.settings.related_threshold)
            .map(|f| f.fact)
            .collect();
        if related.is_empty() {
            if retraction {
                return Ok(decision(Action::Noop, None, None, "nothing to retract"));
            }
            changes.add.push(stored(provenance));
            return Ok(decision(Action::Add, None, Some(new_id), "new"));
        }
        let prompt = self.prompts.reconcile(candidate, &related)?;
        let schema = super::answer::verdict_schema(related.len());
        let verdict = parse_verdict(&self.ask(prompt, schema).await?, related.len())?;
        match verdict {
            Verdict::Add if !retraction => {
                changes.add.push(stored(provenance));
                Ok(decision(Action::Add, None, Some(new_id), "the model: new"))
            }
            Verdict::Update(i) if !retraction => {
                let old = related[i].clone();
                changes.add.push(stored(updated(&old, provenance)));
                if old.id != new_id {
                    changes.remove.push((owner.clone(), old.id));
                }
                Ok(decision(
                    Action::Update,
                    Some(old),
                    Some(new_id),
                    "the model: refines or contradicts it",
                ))
            }
            Verdict::Delete(i) => {
                let old = related[i].clone();
                changes.remove.push((owner.clone(), old.id));
                Ok(decision(
                    Action::Delete,
                    Some(old),
                    None,
                    "the model: retracted",
                ))
            }
            _ => Ok(decision(
                Action::Noop,
                related.into_iter().next(),
                None,
                "the model: nothing to change",
            )),
        }
    }
}

/// The provenance of the fact that replaces `old`: created when `old` was, with `old`'s text
/// added to the history (at most [`MAX_HISTORY`] texts, the newest kept).
fn updated(old: &Fact, provenance: Provenance) -> Provenance {
    let mut history = old
        .provenance
        .as_ref()
        .map(|p| p.history.clone())
        .unwrap_or_default();
    history.push(old.text.as_str().to_owned());
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
    Provenance {
        created_at: old
            .provenance
            .as_ref()
            .map_or(provenance.created_at, |p| p.created_at),
        history,
        ..provenance
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::{FactSource, Timestamp, UserId};

    use super::*;

    #[test]
    fn history_keeps_the_newest_texts_only() {
        let owner = FactOwner::User(UserId::parse("john").unwrap());
        let mut fact = Fact::new(owner.clone(), FactText::parse("Lives in city 0").unwrap());
        for n in 1..=(MAX_HISTORY + 5) {
            let provenance = updated(
                &fact,
                Provenance::new(FactSource::Extracted, Timestamp::from_unix_millis(n as u64)),
            );
            let text = FactText::parse(format!("Lives in city {n}")).unwrap();
            fact = Fact::new(owner.clone(), text).with_provenance(provenance);
        }
        let history = fact.provenance.unwrap().history;
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history.last().map(String::as_str), Some("Lives in city 14"));
        assert_eq!(history.first().map(String::as_str), Some("Lives in city 5"));
    }
}
