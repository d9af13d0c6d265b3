//! `ragback summary`: read or delete a conversation's rolling summary, in the store opened here
//! or, when a running server holds it (or with `--server`), through that server's API.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use ragback_application::ports::SummaryStore;
use ragback_domain::{ConversationId, UserId};
use ragback_infrastructure::{Settings, WiringError, open_stores};

use super::client::{api_error, bearer_headers, path_segment};
use super::facts::{default_server_url, operator_key};
use crate::wire::SummaryRecord;

/// `ragback summary …`.
#[derive(Debug, Subcommand)]
pub enum SummaryCommand {
    /// Print a conversation's summary (JSON).
    Show {
        /// The user's id.
        #[arg(long)]
        user: String,
        /// The conversation's id.
        #[arg(long)]
        conversation: String,
        /// Go through this server's API (default: the store here, else the configured server).
        #[arg(long)]
        server: Option<String>,
    },
    /// Delete a conversation's summary.
    Delete {
        /// The user's id.
        #[arg(long)]
        user: String,
        /// The conversation's id.
        #[arg(long)]
        conversation: String,
        /// Go through this server's API.
        #[arg(long)]
        server: Option<String>,
    },
}

/// Runs a `summary` subcommand.
pub async fn run(command: SummaryCommand, settings: &Settings) -> anyhow::Result<()> {
    let (show, user, conversation, server) = match command {
        SummaryCommand::Show {
            user,
            conversation,
            server,
        } => (true, user, conversation, server),
        SummaryCommand::Delete {
            user,
            conversation,
            server,
        } => (false, user, conversation, server),
    };
    let user_id = UserId::parse(user.as_str()).context("--user")?;
    let conversation_id = ConversationId::parse(conversation.as_str()).context("--conversation")?;
    let url = match server {
        Some(url) => url,
        None => match open_stores(settings) {
            Ok(stores) => {
                return local(stores.summaries.as_ref(), show, &user_id, &conversation_id).await;
            }
            Err(WiringError::StoreLocked(_)) => {
                let url = default_server_url(settings);
                eprintln!("the store is held by a running server: going through its API at {url}");
                url
            }
            Err(error) => return Err(error.into()),
        },
    };
    remote(settings, &url, show, &user_id, &conversation_id).await
}

async fn local(
    store: &dyn SummaryStore,
    show: bool,
    user: &UserId,
    conversation: &ConversationId,
) -> anyhow::Result<()> {
    if show {
        let Some(summary) = store.get_summary(user, conversation).await? else {
            bail!("user `{user}` has no summary of conversation `{conversation}`");
        };
        let record = SummaryRecord::new(conversation.as_str(), summary);
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else if store.delete_summary(user, conversation).await? {
        eprintln!("deleted the summary of conversation `{conversation}` of user `{user}`");
    } else {
        bail!("user `{user}` has no summary of conversation `{conversation}`");
    }
    Ok(())
}

async fn remote(
    settings: &Settings,
    base: &str,
    show: bool,
    user: &UserId,
    conversation: &ConversationId,
) -> anyhow::Result<()> {
    let http = ragback_integrations::http::client_builder()
        .default_headers(bearer_headers(operator_key(settings))?)
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!(
        "{}/users/{}/conversations/{}/summary",
        base.trim_end_matches('/'),
        path_segment(user.as_str()),
        path_segment(conversation.as_str())
    );
    let request = if show {
        http.get(url)
    } else {
        http.delete(url)
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("no ragback answers at {base}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if !(200..300).contains(&status) {
        let error = api_error(status, &body);
        bail!("{} ({})", error.message, error.code);
    }
    if show {
        let record: SummaryRecord = serde_json::from_slice(&body)?;
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        eprintln!("deleted the summary of conversation `{conversation}` of user `{user}`");
    }
    Ok(())
}
