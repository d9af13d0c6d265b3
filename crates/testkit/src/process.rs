//! Running the `ragback` binary in tests.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::{FakeCohere, repo_root};

/// The `ragback` binary at `binary` (a test's `env!("CARGO_BIN_EXE_ragback")`) with a clean
/// environment, the repository as working directory, no config files, the Qdrant Edge store at
/// `store` and, when given, the fake Cohere as embedder.
pub fn ragback(binary: &str, store: &Path, cohere: Option<&MockServer>) -> Command {
    ragback_configured(
        binary,
        store,
        cohere,
        Path::new("/nonexistent/ragback.toml"),
    )
}

/// [`ragback`] reading its configuration from the TOML file at `config`.
pub fn ragback_configured(
    binary: &str,
    store: &Path,
    cohere: Option<&MockServer>,
    config: &Path,
) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(repo_root())
        .arg("--config")
        .arg(config)
        .args(["--env-file", "/nonexistent/.env"])
        .env("RAGBACK_STORE__PATH", store)
        .env("RUST_LOG", "warn")
        // One thread per local generation: tests run side by side.
        .env("RAGBACK_LLM__LOCAL__THREADS", "1");
    if let Some(cohere) = cohere {
        command
            .env("RAGBACK_EMBEDDER__COHERE__BASE_URL", cohere.uri())
            .env("COHERE_API_KEY", "co-test-key");
    }
    command
}

/// Runs `command` to its end: (success, stdout, stderr).
pub fn run(command: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A fake Cohere answering `v2/embed` with bag-of-words vectors.
pub async fn fake_cohere() -> MockServer {
    let cohere = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/embed"))
        .respond_with(FakeCohere)
        .mount(&cohere)
        .await;
    cohere
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `/health` to answer.
pub async fn wait_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = crate::http_client();
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            && response.status() == 200
        {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server exited early"
        );
        assert!(
            Instant::now() < deadline,
            "the server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `ragback serve` process, killed when dropped.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl ServerProcess {
    /// Starts `command` (a `ragback` with its environment) as `serve` on a free port, and waits
    /// until it is healthy. The port is also set as `RAGBACK_SERVER__ADDR`, so that CLI commands
    /// given the same variables find the server.
    pub async fn start(command: &mut Command) -> Self {
        let port = free_port();
        let child = command
            .env("RAGBACK_SERVER__ADDR", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        wait_healthy(port, &mut server.child).await;
        server
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) used so far by `pid`, from /proc.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), 1-based: utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// (current RSS, peak RSS) of `pid` in MiB, from /proc.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
