//! The query of a search: what is embedded, what the reranker reads, which words the lexical
//! search gets — from a chat turn or from a plain text — and its embedding.

use ragback_domain::{Message, Role};
use tokio::time::Instant;

use super::FactRetriever;
use crate::ports::{EmbedError, Embedder, EmbeddingPurpose};
use crate::retry::{RetryError, retry};

/// What a search ranks by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// Embedded in one call: one text, or the last user message and its context (mixed by the
    /// context weight).
    pub embed: Vec<String>,
    /// What the reranker scores facts against.
    pub text: String,
    /// The words of the lexical search, with hybrid search on.
    pub words: Option<String>,
    /// The last user message alone, searched beside the window when the window holds more
    /// (`query_last_alone`): a fact it names is never drowned by an earlier topic.
    pub alone: Option<String>,
}

/// The query's vectors: the window's (or the mix's), and the last message's alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryVectors {
    /// The window, or the last message mixed with its context.
    pub main: Vec<f32>,
    /// The last user message alone, when it is searched apart.
    pub alone: Option<Vec<f32>>,
}

/// Why the query could not be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The embedder failed, after retries.
    #[error(transparent)]
    Embed(#[from] RetryError<EmbedError>),
    /// The embedder answered, but not with one vector of one size per text.
    #[error("the embedder returned {got} vectors for {expected} query texts (or of other sizes)")]
    Mismatch {
        /// Texts sent.
        expected: usize,
        /// Vectors received.
        got: usize,
    },
}

impl FactRetriever {
    /// The query window of a turn: the first index and the last user message's index.
    fn query_window(&self, history: &[Message]) -> Option<(usize, usize)> {
        let last_user = history.iter().rposition(|m| m.role == Role::User)?;
        let first = (last_user + 1).saturating_sub(self.settings.query_messages.max(1));
        Some((first, last_user))
    }

    /// The text to embed for a turn: the last user message, preceded by up to
    /// `query_messages - 1` earlier messages. `None` when no user message exists.
    pub fn query_text(&self, history: &[Message]) -> Option<String> {
        let (first, last_user) = self.query_window(history)?;
        let texts: Vec<&str> = history[first..=last_user]
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        Some(texts.join("\n"))
    }

    /// The texts to embed for a turn: the window as one text, or — with a context weight — the
    /// last user message and the messages before it in the window, apart.
    pub(crate) fn query_texts(&self, history: &[Message]) -> Option<Vec<String>> {
        let (first, last_user) = self.query_window(history)?;
        if self.settings.query_context_weight <= 0.0 || first == last_user {
            return self.query_text(history).map(|joined| vec![joined]);
        }
        let context: Vec<&str> = history[first..last_user]
            .iter()
            .map(|m| m.text.as_str())
            .collect();
        Some(vec![
            history[last_user].text.as_str().to_owned(),
            context.join("\n"),
        ])
    }

    /// The query of a chat turn; `None` without a user message. The lexical search gets only the
    /// last user message, and only with hybrid search on: the character's lines share words with
    /// facts they are not about.
    pub(crate) fn turn_query(&self, history: &[Message]) -> Option<Query> {
        let (first, last_user) = self.query_window(history)?;
        let last = history[last_user].text.as_str();
        Some(Query {
            embed: self.query_texts(history)?,
            text: self.query_text(history)?,
            words: self.settings.lexical_allowance.map(|_| last.to_owned()),
            alone: (self.settings.query_last_alone && first < last_user).then(|| last.to_owned()),
        })
    }

    /// The query of a plain text (an operator's search): the text alone, by vector.
    pub(crate) fn text_query(text: &str) -> Query {
        Query {
            embed: vec![text.to_owned()],
            text: text.to_owned(),
            words: None,
            alone: None,
        }
    }

    /// Embeds the query in one call: one text is the query; two (the last message and its
    /// context) are mixed by the context weight; the last message alone, when it is searched
    /// apart, comes last.
    pub(crate) async fn embed(
        &self,
        embedder: &dyn Embedder,
        query: &Query,
        deadline: Instant,
    ) -> Result<QueryVectors, QueryError> {
        let texts: Vec<String> = query.embed.iter().chain(&query.alone).cloned().collect();
        let mut vectors = retry(
            &self.settings.embed_retry,
            deadline,
            "query embedding",
            || embedder.embed(&texts, EmbeddingPurpose::Query),
        )
        .await?;
        let mismatch = |got: usize| QueryError::Mismatch {
            expected: texts.len(),
            got,
        };
        if vectors.len() != texts.len() {
            return Err(mismatch(vectors.len()));
        }
        let alone = if query.alone.is_some() {
            vectors.pop()
        } else {
            None
        };
        let main = match vectors.as_slice() {
            [one] => one.clone(),
            [last, context] if last.len() == context.len() => {
                let w = self.settings.query_context_weight.clamp(0.0, 1.0);
                let mixed: Vec<f32> = unit(last)
                    .iter()
                    .zip(unit(context))
                    .map(|(a, b)| (1.0 - w) * a + w * b)
                    .collect();
                unit(&mixed)
            }
            _ => return Err(mismatch(texts.len() + 1)),
        };
        if alone.as_ref().is_some_and(|a| a.len() != main.len()) {
            return Err(mismatch(texts.len() + 1));
        }
        Ok(QueryVectors { main, alone })
    }
}

/// `v` scaled to length 1 (unchanged when zero).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm).collect()
}
