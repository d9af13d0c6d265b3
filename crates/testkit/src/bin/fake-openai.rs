//! The fake OpenAI-compatible LLM of `make eval-demo`, on a local port: prints its base URL
//! (`http://127.0.0.1:PORT`) on the first line of stdout and serves until killed.

use ragback_testkit::fake_openai::FakeOpenAi;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (server, _fake) = FakeOpenAi::start().await;
    println!("{}", server.uri());
    // Serve until the demo script kills the process.
    std::future::pending::<()>().await;
}
