//! The testkit's Qdrant server (Qdrant's engine behind the real gRPC API) on a local port, for
//! measurements against a server store (`QDRANT_URL=… make load`): prints its gRPC URL on the first
//! line of stdout and serves until killed.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = ragback_testkit::fake_qdrant::start().await;
    println!("{url}");
    std::future::pending::<()>().await;
}
