//! A programmable OpenAI-compatible upstream on a raw TCP socket, for the fault matrix: each
//! connection gets the next scripted [`Fault`] (the last one repeats), including what wiremock
//! cannot do: hang up mid-body, and stop listening so connections are refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::completion;
use crate::sse_upstream::read_request;

/// What one connection gets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A whole response: status, extra headers, body.
    Respond(u16, Vec<(&'static str, String)>, String),
    /// Promises a long body, sends a few bytes of it, hangs up.
    ResetMidBody,
    /// Reads the request and never answers.
    Stall,
}

impl Fault {
    /// 200 with a chat completion of `text`.
    pub fn ok(text: &str) -> Self {
        Self::Respond(200, Vec::new(), completion(text).to_string())
    }

    /// `status` with an OpenAI-style error body.
    pub fn status(status: u16) -> Self {
        let body = serde_json::json!({"error": {"message": format!("upstream says {status}"), "code": status}});
        Self::Respond(status, Vec::new(), body.to_string())
    }

    /// `status` with `Retry-After: seconds`.
    pub fn status_retry_after(status: u16, seconds: u64) -> Self {
        match Self::status(status) {
            Self::Respond(s, _, body) => {
                Self::Respond(s, vec![("retry-after", seconds.to_string())], body)
            }
            other => other,
        }
    }

    /// 200 with a body.
    pub fn body(body: Value) -> Self {
        Self::Respond(200, Vec::new(), body.to_string())
    }
}

/// The running upstream.
pub struct FaultUpstream {
    /// `http://127.0.0.1:port/api/v1`.
    pub base_url: String,
    addr: SocketAddr,
    script: Arc<Mutex<Vec<Fault>>>,
    connections: Arc<AtomicUsize>,
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl FaultUpstream {
    /// Listens on a free port, answering `Fault::ok("*nods* fine")` until told otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Self {
            base_url: format!("http://{addr}/api/v1"),
            addr,
            script: Arc::new(Mutex::new(vec![Fault::ok("*nods* fine")])),
            connections: Arc::new(AtomicUsize::new(0)),
            accepting: Mutex::new(None),
        };
        upstream.accept_on(listener);
        upstream
    }

    /// The faults for the next connections, in order; the last one repeats. Resets the count.
    pub fn script(&self, faults: Vec<Fault>) {
        assert!(!faults.is_empty());
        *self.script.lock().unwrap() = faults;
        self.connections.store(0, Ordering::SeqCst);
    }

    /// Connections since the last [`script`](Self::script).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops listening: connections are refused until [`listen`](Self::listen).
    pub fn refuse(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn listen(&self) {
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.accept_on(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }

    fn accept_on(&self, listener: TcpListener) {
        let (script, connections) = (self.script.clone(), self.connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let fault = {
                    let script = script.lock().unwrap();
                    script[n.min(script.len() - 1)].clone()
                };
                tokio::spawn(serve(socket, fault));
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }
}

async fn serve(mut socket: TcpStream, fault: Fault) {
    if read_request(&mut socket).await.is_none() {
        return;
    }
    let _ = match fault {
        Fault::Respond(status, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            socket.write_all(format!("{head}{body}").as_bytes()).await
        }
        Fault::ResetMidBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{\"choices\": [";
            socket.write_all(head.as_bytes()).await
        }
        Fault::Stall => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        }
    };
}
