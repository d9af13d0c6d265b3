//! Optional bearer-token authentication.
//!
//! - No keys configured: every route is open.
//! - `api_keys`: every route but `/health`, `/ready`, `/openapi.json` and `/docs` needs
//!   `Authorization: Bearer <key>`.
//! - `admin_api_keys`: adding and deleting facts needs one of these; the plain keys then only read.
//!   Admin keys are accepted everywhere.
//!
//! Keys are compared through their SHA-256 digests with a comparison that takes the same time
//! wherever the first difference is, over every configured key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;

/// Routes that never need a key: the probes, and the API's description.
const OPEN_PATHS: [&str; 4] = ["/health", "/ready", "/openapi.json", "/docs"];

/// The accepted keys, as digests. Shared, not copied: the middleware clones it for every request.
#[derive(Clone, Default)]
pub struct Auth {
    keys: Arc<[[u8; 32]]>,
    admin_keys: Arc<[[u8; 32]]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .field("admin_keys", &self.admin_keys.len())
            .finish()
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    Key,
    AdminKey,
}

impl Auth {
    /// Authentication with these keys (both lists empty: none).
    pub fn new(keys: &[SecretString], admin_keys: &[SecretString]) -> Self {
        Self {
            keys: keys.iter().map(digest).collect(),
            admin_keys: admin_keys.iter().map(digest).collect(),
        }
    }

    /// Whether any key is configured.
    pub fn enabled(&self) -> bool {
        !(self.keys.is_empty() && self.admin_keys.is_empty())
    }

    fn need(&self, method: &Method, path: &str) -> Need {
        if !self.enabled() || OPEN_PATHS.contains(&path) {
            return Need::Nothing;
        }
        let changes_facts = method != Method::GET
            && (path.starts_with("/users/") || path.starts_with("/characters/"));
        if changes_facts && !self.admin_keys.is_empty() {
            Need::AdminKey
        } else {
            Need::Key
        }
    }

    /// Checks a request's `Authorization` header; `Err` is the response to send.
    fn check(&self, method: &Method, path: &str, header: Option<&str>) -> Result<(), ApiError> {
        let need = self.need(method, path);
        if need == Need::Nothing {
            return Ok(());
        }
        let Some(token) = header.and_then(bearer) else {
            return Err(ApiError::unauthorized());
        };
        let token = digest_str(token);
        let admin = contains(&self.admin_keys, &token);
        let plain = contains(&self.keys, &token);
        match need {
            Need::AdminKey if admin => Ok(()),
            Need::AdminKey if plain => Err(ApiError::forbidden(
                "this key may read facts but not change them; use an admin key \
                 (RAGBACK_SERVER__ADMIN_API_KEYS)",
            )),
            Need::Key if admin || plain => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The middleware: refuses requests without the key their route needs.
pub async fn require_key(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check(request.method(), request.uri().path(), header) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
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

    fn status(auth: &Auth, method: Method, path: &str, header: Option<&str>) -> u16 {
        match auth.check(&method, path, header) {
            Ok(()) => 200,
            Err(error) => error.status().as_u16(),
        }
    }

    #[test]
    fn without_keys_everything_is_open() {
        let auth = Auth::new(&[], &[]);
        assert!(!auth.enabled());
        assert_eq!(status(&auth, Method::POST, "/users/john/facts", None), 200);
    }

    #[test]
    fn with_keys_every_route_but_health_and_ready_needs_one() {
        let auth = Auth::new(&keys(&["k-one", "k-two"]), &[]);
        assert_eq!(status(&auth, Method::GET, "/health", None), 200);
        assert_eq!(status(&auth, Method::GET, "/ready", None), 200);
        assert_eq!(status(&auth, Method::POST, "/generate", None), 401);
        assert_eq!(
            status(&auth, Method::POST, "/generate", Some("Bearer k-three")),
            401
        );
        assert_eq!(status(&auth, Method::POST, "/generate", Some("k-one")), 401);
        assert_eq!(
            status(&auth, Method::POST, "/generate", Some("bearer  k-two ")),
            200
        );
        // Without admin keys, the plain keys change facts too.
        assert_eq!(
            status(
                &auth,
                Method::DELETE,
                "/users/john/facts",
                Some("Bearer k-one")
            ),
            200
        );
    }

    #[test]
    fn admin_keys_guard_fact_changes_and_open_everything() {
        let auth = Auth::new(&keys(&["reader"]), &keys(&["admin"]));
        let reader = Some("Bearer reader");
        let admin = Some("Bearer admin");
        assert_eq!(status(&auth, Method::POST, "/generate", reader), 200);
        assert_eq!(status(&auth, Method::GET, "/users/john/facts", reader), 200);
        assert_eq!(status(&auth, Method::POST, "/facts/search", reader), 200);
        assert_eq!(
            status(&auth, Method::POST, "/users/john/facts", reader),
            403
        );
        assert_eq!(
            status(&auth, Method::DELETE, "/characters/blaze/facts/x", reader),
            403
        );
        assert_eq!(status(&auth, Method::POST, "/users/john/facts", admin), 200);
        assert_eq!(status(&auth, Method::POST, "/generate", admin), 200);
        assert_eq!(status(&auth, Method::POST, "/users/john/facts", None), 401);
    }

    #[test]
    fn the_debug_form_shows_no_key() {
        let auth = Auth::new(&keys(&["sk-secret"]), &[]);
        assert_eq!(format!("{auth:?}"), "Auth { keys: 1, admin_keys: 0 }");
    }
}
