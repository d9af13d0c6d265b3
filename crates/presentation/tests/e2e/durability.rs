//! Crash safety of the embedded store: `kill -9` while facts are being written loses no fact the
//! server acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragback_testkit::process::{ServerProcess, fake_cohere};
use serde_json::{Value, json};

use crate::ragback;

const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn every_fact_acknowledged_before_a_kill_9_is_there_after_a_restart() {
    let cohere = fake_cohere().await;
    let store = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&mut ragback(store.path(), Some(&cohere))).await;
    let base = server.url();
    let client = ragback_testkit::http_client();

    let acknowledged = Arc::new(Mutex::new(vec![Vec::<String>::new(); WRITERS]));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, base, acknowledged) = (client.clone(), base.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let text = format!("writer {writer} remembers thing number {i}");
                let sent = client
                    .post(format!("{base}/users/w{writer}/facts"))
                    .json(&json!({"facts": [text]}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        acknowledged.lock().unwrap()[writer].push(text);
                    }
                    // Not acknowledged (slow under load, or refused): not counted, go on.
                    Ok(_) => {}
                    Err(error) if error.is_timeout() => {}
                    // The server is gone: stop writing.
                    Err(_) => return,
                }
            }
        }));
    }
    // Let writes flow, then kill the server in the middle of them (a slow machine gets two
    // minutes for the first 60 acknowledgements, never forever).
    let started = std::time::Instant::now();
    loop {
        let done: usize = acknowledged.lock().unwrap().iter().map(Vec::len).sum();
        if done >= 60 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {done} facts acknowledged in two minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    drop(server);

    let restarted = ServerProcess::start(&mut ragback(store.path(), Some(&cohere))).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let total: usize = acknowledged.iter().map(Vec::len).sum();
    assert!(total >= 60, "{total} facts acknowledged");
    for (writer, texts) in acknowledged.iter().enumerate() {
        let listed: Value = client
            .get(format!(
                "{}/users/w{writer}/facts?limit=1000",
                restarted.url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored: Vec<&str> = listed["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        for text in texts {
            assert!(
                stored.contains(&text.as_str()),
                "lost after kill -9: {text}"
            );
        }
    }
    println!("{total} acknowledged facts all survived kill -9");
}
