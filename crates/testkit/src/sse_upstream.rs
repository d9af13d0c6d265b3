//! A tiny OpenAI-compatible streaming upstream on a raw TCP socket: it writes chunks with pauses,
//! can stall, and notices when ragback closes the connection — which wiremock cannot show.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the upstream does after the response headers.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes a `data:` event with this content delta.
    Delta(&'static str),
    /// Waits.
    Pause(Duration),
    /// Writes `data: [DONE]` and closes.
    Done,
    /// Writes nothing more, keeping the connection open.
    Stall,
    /// Writes deltas forever, one every pause.
    Endless(&'static str, Duration),
}

/// The running upstream.
pub struct SseUpstream {
    /// `http://127.0.0.1:port/api/v1`, the base URL to configure.
    pub base_url: String,
    requests: Arc<AtomicUsize>,
    closed_by_client: Arc<AtomicBool>,
    closed: Arc<Notify>,
    first_deltas: Arc<Mutex<Vec<Instant>>>,
}

impl SseUpstream {
    /// Serves `script` to every request.
    pub async fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let closed_by_client = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(Notify::new());
        let first_deltas = Arc::new(Mutex::new(Vec::new()));
        let (count, flag, notify) = (requests.clone(), closed_by_client.clone(), closed.clone());
        let firsts = first_deltas.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (script, flag, notify) = (script.clone(), flag.clone(), notify.clone());
                let firsts = firsts.clone();
                tokio::spawn(async move {
                    if serve(socket, &script, &firsts).await == Served::ClosedByClient {
                        flag.store(true, Ordering::SeqCst);
                        notify.notify_waiters();
                    }
                });
            }
        });
        Self {
            base_url,
            requests,
            closed_by_client,
            closed,
            first_deltas,
        }
    }

    /// When the first delta of each response was written to the socket, in order.
    pub fn first_delta_times(&self) -> Vec<Instant> {
        self.first_deltas.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits until ragback closes a connection while the upstream is still writing; false if it
    /// has not within `limit`.
    pub async fn wait_closed_by_client(&self, limit: Duration) -> bool {
        let notified = self.closed.notified();
        if self.closed_by_client.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::timeout(limit, notified).await.is_ok()
            || self.closed_by_client.load(Ordering::SeqCst)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Served {
    Finished,
    ClosedByClient,
}

async fn serve(mut socket: TcpStream, script: &[Step], firsts: &Mutex<Vec<Instant>>) -> Served {
    // As providers' servers do: each chunk leaves at once, not after the previous one's ACK.
    socket.set_nodelay(true).unwrap();
    if read_request(&mut socket).await.is_none() {
        return Served::ClosedByClient;
    }
    let (mut reader, mut writer) = socket.into_split();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                connection: close\r\n\r\n";
    let write = async {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(b": OPENROUTER PROCESSING\n\n").await?;
        let mut first = true;
        for step in script {
            match step {
                Step::Delta(text) => {
                    if std::mem::take(&mut first) {
                        firsts.lock().unwrap().push(Instant::now());
                    }
                    writer.write_all(chunk(text).as_bytes()).await?;
                }
                Step::Pause(pause) => tokio::time::sleep(*pause).await,
                Step::Done => {
                    writer.write_all(b"data: [DONE]\n\n").await?;
                    return Ok(());
                }
                Step::Stall => std::future::pending::<()>().await,
                Step::Endless(text, pause) => loop {
                    writer.write_all(chunk(text).as_bytes()).await?;
                    tokio::time::sleep(*pause).await;
                },
            }
        }
        Ok::<(), std::io::Error>(())
    };
    // The client sends nothing after its request: a read that ends means it hung up.
    let mut byte = [0u8; 1];
    tokio::select! {
        written = write => match written {
            Ok(()) => Served::Finished,
            Err(_) => Served::ClosedByClient,
        },
        _ = reader.read(&mut byte) => Served::ClosedByClient,
    }
}

/// Reads the request head and its `content-length` body.
pub async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf.split_off(end + 4));
        }
    }
}

/// An OpenAI `chat.completion.chunk` event carrying `content`.
pub fn chunk(content: &str) -> String {
    let body = json!({
        "id": "gen-1", "object": "chat.completion.chunk", "created": 1_732_450_000,
        "model": "mistralai/mistral-nemo", "provider": "Mistral",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": null}]
    });
    format!("data: {body}\n\n")
}
