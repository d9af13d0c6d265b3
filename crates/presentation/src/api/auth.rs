//! Bearer-token authentication: who is calling. What each caller may do is decided after routing,
//! in [`access`](super::access).
//!
//! Three key lists, each optional:
//! - `api_keys` (readers): generate replies, read and search facts, read metrics;
//! - `memory_api_keys`: a reader that may also have facts learned from its turns (memory
//!   extraction, `"memory": {"extract": true}` and `RAGBACK_MEMORY__AUTO`);
//! - `admin_api_keys`: everything, the facts API's writes included.
//!
//! With only `api_keys` configured, those keys may do everything (one trusted client). No keys at
//! all: authentication is off and every caller may do everything.
//!
//! Keys are compared through their SHA-256 digests with a comparison that takes the same time
//! wherever the first difference is, over every configured key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// What a caller may do; each grant includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// Generate replies, read and search facts, read metrics.
    Read,
    /// Also have facts learned from its turns (memory extraction).
    Learn,
    /// Also add and delete facts through the facts API.
    Write,
}

/// Who sent a request, as its `Authorization` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off: every caller may do everything.
    Open,
    /// No `Authorization` header, or not a bearer token.
    Anonymous,
    /// A bearer token that is none of the configured keys.
    UnknownKey,
    /// A configured key, with what it may do.
    Key(Grant),
}

impl Caller {
    /// What this caller may do; `None` for callers without a valid key.
    pub fn grant(self) -> Option<Grant> {
        match self {
            Self::Open => Some(Grant::Write),
            Self::Key(grant) => Some(grant),
            Self::Anonymous | Self::UnknownKey => None,
        }
    }

    /// Whether this caller may do what `grant` allows.
    pub fn may(self, grant: Grant) -> bool {
        self.grant().is_some_and(|held| held >= grant)
    }
}

/// The accepted keys, as digests. Shared, not copied: the middleware clones it for every request.
#[derive(Clone, Default)]
pub struct Auth {
    keys: Arc<[[u8; 32]]>,
    memory_keys: Arc<[[u8; 32]]>,
    admin_keys: Arc<[[u8; 32]]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .field("memory_keys", &self.memory_keys.len())
            .field("admin_keys", &self.admin_keys.len())
            .finish()
    }
}

/// The configured key lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyLists<'a> {
    /// Readers (`RAGBACK_SERVER__API_KEYS`).
    pub read: &'a [SecretString],
    /// Readers that may also learn (`RAGBACK_SERVER__MEMORY_API_KEYS`).
    pub memory: &'a [SecretString],
    /// Everything (`RAGBACK_SERVER__ADMIN_API_KEYS`).
    pub admin: &'a [SecretString],
}

impl Auth {
    /// Authentication with these keys (every list empty: none).
    pub fn new(lists: KeyLists<'_>) -> Self {
        let digests = |keys: &[SecretString]| keys.iter().map(digest).collect();
        Self {
            keys: digests(lists.read),
            memory_keys: digests(lists.memory),
            admin_keys: digests(lists.admin),
        }
    }

    /// Whether any key is configured.
    pub fn enabled(&self) -> bool {
        !(self.keys.is_empty() && self.memory_keys.is_empty() && self.admin_keys.is_empty())
    }

    /// Whether the plain keys are readers only (memory or admin keys are configured).
    pub fn roles_split(&self) -> bool {
        !(self.memory_keys.is_empty() && self.admin_keys.is_empty())
    }

    /// Who sent a request with this `Authorization` header.
    pub fn identify(&self, header: Option<&str>) -> Caller {
        if !self.enabled() {
            return Caller::Open;
        }
        let Some(token) = header.and_then(bearer) else {
            return Caller::Anonymous;
        };
        let token = digest_str(token);
        // Every list is compared, whatever matched first.
        let admin = contains(&self.admin_keys, &token);
        let memory = contains(&self.memory_keys, &token);
        let plain = contains(&self.keys, &token);
        if admin {
            Caller::Key(Grant::Write)
        } else if memory {
            Caller::Key(Grant::Learn)
        } else if plain && self.roles_split() {
            Caller::Key(Grant::Read)
        } else if plain {
            Caller::Key(Grant::Write)
        } else {
            Caller::UnknownKey
        }
    }
}

/// The middleware: records who is calling, for [`access`](super::access) to decide on after
/// routing. Refuses nothing itself.
pub async fn identify(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = auth.identify(header);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(key: &SecretString) -> [u8; 32] {
    digest_str(key.expose_secret())
}

fn digest_str(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `token` is among `keys`, comparing every byte of every key (`subtle`'s constant-time
/// equality, never short-circuited).
fn contains(keys: &[[u8; 32]], token: &[u8; 32]) -> bool {
    let found = keys
        .iter()
        .fold(Choice::from(0), |found, key| found | key.ct_eq(token));
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|k| SecretString::from(*k)).collect()
    }

    #[test]
    fn without_keys_every_caller_may_do_everything() {
        let auth = Auth::new(KeyLists::default());
        assert!(!auth.enabled());
        assert_eq!(auth.identify(None), Caller::Open);
        assert!(auth.identify(Some("Bearer anything")).may(Grant::Write));
    }

    #[test]
    fn plain_keys_alone_may_do_everything_and_others_nothing() {
        let read = keys(&["k-one-0123456789", "k-two-0123456789"]);
        let auth = Auth::new(KeyLists {
            read: &read,
            ..KeyLists::default()
        });
        assert_eq!(auth.identify(None), Caller::Anonymous);
        assert_eq!(auth.identify(Some("k-one-0123456789")), Caller::Anonymous);
        assert_eq!(
            auth.identify(Some("Bearer k-three-0123456789")),
            Caller::UnknownKey
        );
        assert_eq!(
            auth.identify(Some("bearer  k-two-0123456789 ")),
            Caller::Key(Grant::Write)
        );
    }

    #[test]
    fn with_memory_or_admin_keys_plain_keys_only_read() {
        let (read, memory, admin) = (keys(&["reader"]), keys(&["learner"]), keys(&["admin"]));
        let auth = Auth::new(KeyLists {
            read: &read,
            memory: &memory,
            admin: &admin,
        });
        assert_eq!(
            auth.identify(Some("Bearer reader")),
            Caller::Key(Grant::Read)
        );
        assert_eq!(
            auth.identify(Some("Bearer learner")),
            Caller::Key(Grant::Learn)
        );
        assert_eq!(
            auth.identify(Some("Bearer admin")),
            Caller::Key(Grant::Write)
        );
        assert!(Caller::Key(Grant::Learn).may(Grant::Read));
        assert!(!Caller::Key(Grant::Learn).may(Grant::Write));
        assert!(!Caller::UnknownKey.may(Grant::Read));
    }

    #[test]
    fn the_debug_form_shows_no_key() {
        let read = keys(&["sk-secret"]);
        let auth = Auth::new(KeyLists {
            read: &read,
            ..KeyLists::default()
        });
        assert_eq!(
            format!("{auth:?}"),
            "Auth { keys: 1, memory_keys: 0, admin_keys: 0 }"
        );
    }
}
