//! The state every handler reads.

use std::sync::Arc;

use ragback_application::ports::FactStore;
use ragback_application::{ChatService, FactLibrary};
use ragback_domain::UserId;

use super::auth::Auth;

/// Request limits enforced before any upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, in bytes.
    pub body_bytes: usize,
    /// Most messages per request.
    pub messages: usize,
}

/// Shared, cheaply cloneable state.
#[derive(Clone)]
pub struct AppState {
    /// Writes replies.
    pub chat: ChatService,
    /// Adds facts.
    pub facts: FactLibrary,
    /// The fact store.
    pub store: Arc<dyn FactStore>,
    /// Whose facts `/api/v1/chat` uses.
    pub default_user: UserId,
    /// Request limits.
    pub limits: Limits,
    /// Who may call which route.
    pub auth: Auth,
}
