//! The end-to-end harness: the real server on port 0, a real Qdrant Edge store in a temporary
//! directory, and local servers speaking Cohere's and OpenRouter's wire formats.

use std::net::SocketAddr;

use ragback_domain::{Fact, FactOwner, FactText};
use ragback_infrastructure::{ConfigSources, Settings, build_services, telemetry};
use ragback_presentation::api;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{CHAT_MODEL, FakeCohere, MODEL_DIR, completion, repo_root};

/// A running ragback with its fake upstreams.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// An HTTP client for it.
    pub client: reqwest::Client,
    /// The fake OpenRouter (`/api/v1/chat/completions`); nothing is mounted until a test does.
    pub llm: MockServer,
    /// The fake Cohere (`/v2/embed` answers bag-of-words vectors).
    pub cohere: MockServer,
    /// The Qdrant Edge store's directory.
    pub store_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    memory_stopped: Option<ragback_application::memory::MemoryWorkerStopped>,
}

/// What to set up before the server starts.
pub struct Setup {
    /// Extra configuration variables (`RAGBACK_…`, value).
    pub vars: Vec<(String, String)>,
    /// Facts to store first: (owner, texts).
    pub facts: Vec<(FactOwner, Vec<&'static str>)>,
    /// Whether the LLM and Cohere keys are set (and the fakes used). Without them the local
    /// embedder and the local chat model answer, unless `vars` choose otherwise.
    pub keys: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            vars: Vec::new(),
            facts: Vec::new(),
            keys: true,
        }
    }
}

impl TestApp {
    /// Starts with the default setup.
    pub async fn spawn() -> Self {
        Self::spawn_with(Setup::default()).await
    }

    /// Starts ragback on port 0 with `setup`.
    pub async fn spawn_with(setup: Setup) -> Self {
        telemetry::init_for_tests();
        let llm = MockServer::start().await;
        let cohere = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/embed"))
            .respond_with(FakeCohere)
            .with_priority(u8::MAX)
            .mount(&cohere)
            .await;
        let store_dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let mut vars: Vec<(String, String)> = vec![
            ("RAGBACK_SERVER__ADDR".into(), "127.0.0.1:0".into()),
            (
                "RAGBACK_LLM__BASE_URL".into(),
                format!("{}/api/v1", llm.uri()),
            ),
            ("RAGBACK_LLM__RETRY_INITIAL_BACKOFF_MS".into(), "10".into()),
            ("RAGBACK_LLM__RETRY_MAX_BACKOFF_MS".into(), "50".into()),
            ("RAGBACK_LLM__TIMEOUT_SECS".into(), "10".into()),
            ("RAGBACK_EMBEDDER__COHERE__BASE_URL".into(), cohere.uri()),
            (
                "RAGBACK_EMBEDDER__RETRY_INITIAL_BACKOFF_MS".into(),
                "5".into(),
            ),
            ("RAGBACK_EMBEDDER__RETRY_MAX_BACKOFF_MS".into(), "20".into()),
            (
                "RAGBACK_STORE__PATH".into(),
                store_dir.path().display().to_string(),
            ),
            (
                "RAGBACK_PROMPT__TEMPLATE".into(),
                root.join("prompts/chat.tera").display().to_string(),
            ),
            (
                "RAGBACK_MEMORY__PROMPTS".into(),
                root.join("prompts/memory").display().to_string(),
            ),
            (
                "RAGBACK_SUMMARY__PROMPTS".into(),
                root.join("prompts/summary").display().to_string(),
            ),
            ("RAGBACK_RETRIEVAL__THRESHOLD".into(), "0.3".into()),
            (
                "RAGBACK_EMBEDDER__LOCAL__MODEL_DIR".into(),
                root.join(MODEL_DIR).display().to_string(),
            ),
            (
                "RAGBACK_LLM__LOCAL__MODEL_PATH".into(),
                root.join(CHAT_MODEL).display().to_string(),
            ),
            // One thread per local generation: tests run side by side, and ggml's threads spin
            // while they wait.
            ("RAGBACK_LLM__LOCAL__THREADS".into(), "1".into()),
        ];
        if setup.keys {
            vars.push(("RAGBACK_LLM__API_KEY".into(), "sk-or-test-key".into()));
            vars.push((
                "RAGBACK_EMBEDDER__COHERE__API_KEY".into(),
                "co-test-key".into(),
            ));
        } else {
            // A key-less OpenRouter: the base URL must be OpenRouter's for the key to be required.
            vars.retain(|(k, _)| k != "RAGBACK_LLM__BASE_URL");
        }
        vars.retain(|(key, _)| setup.vars.iter().all(|(set, _)| set != key));
        vars.extend(setup.vars);
        let settings = Settings::load(&ConfigSources::none(), &vars).unwrap();
        let services = build_services(&settings).unwrap();
        for (owner, texts) in setup.facts {
            let facts = texts
                .iter()
                .map(|t| Fact::new(owner.clone(), FactText::parse(*t).unwrap()))
                .collect();
            services.facts.add(facts, |_| {}).await.unwrap();
        }
        let state = ragback_presentation::api::AppState::from_settings(services, &settings);
        let memory_stopped = state.memory_queue.as_ref().map(|q| q.stopped());
        let connections = ragback_presentation::api::Connections::from_settings(&settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            api::serve(
                listener,
                api::router(state),
                async {
                    let _ = rx.await;
                },
                connections,
            )
            .await
            .unwrap();
        });
        Self {
            addr,
            client: crate::http_client(),
            llm,
            cohere,
            store_dir,
            shutdown: Some(tx),
            server: Some(server),
            memory_stopped,
        }
    }

    /// The URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs JSON and returns the status and the JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.post(path, body).await;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// GETs a path and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Mounts an LLM answer for every call.
    pub async fn llm_replies(&self, text: &str) {
        Mock::given(method("POST"))
            .and(path("/api/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(text)))
            .mount(&self.llm)
            .await;
    }

    /// The JSON bodies the LLM received.
    pub async fn llm_requests(&self) -> Vec<Value> {
        self.llm
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/chat/completions"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    /// Stops the server and waits for it, and for its connections, to finish.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        // The memory worker holds the store too: it must let go before the directory goes.
        if let Some(stopped) = self.memory_stopped.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), stopped.wait()).await;
        }
    }
}

impl Drop for TestApp {
    /// Stops the server before the store directory is deleted: Qdrant Edge flushes when the store
    /// is dropped, and panics if its directory is gone. Needs the multi-threaded runtime
    /// (`#[tokio::test(flavor = "multi_thread")]`).
    fn drop(&mut self) {
        if self.server.is_none() {
            return;
        }
        let handle = tokio::runtime::Handle::current();
        assert_eq!(
            handle.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "end-to-end tests must use #[tokio::test(flavor = \"multi_thread\")]"
        );
        tokio::task::block_in_place(|| handle.block_on(self.shut_down()));
    }
}
