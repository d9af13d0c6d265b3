//! The deployment files, read as what they promise (no Docker engine or cluster here: `.ci/run`
//! lints the Dockerfile with hadolint and validates the Kubernetes example against its schemas):
//! the image's runtime stage and user, the compose stack's services, healthchecks and replicas
//! profile, the Kubernetes example's objects and probes — and every setting they name is one
//! ragback reads, so that a typo fails here rather than at the container's start.

use std::collections::BTreeMap;

use ragback_infrastructure::{ConfigSources, Settings};
use ragback_testkit::process::run;
use ragback_testkit::{TestApp, repo_root};
use serde::Deserialize as _;
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap()
}

fn yaml(path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|doc| {
            let mut value = Value::deserialize(doc).unwrap();
            // `<<: *anchor` merge keys, as compose applies them.
            value.apply_merge().unwrap();
            value
        })
        .collect()
}

/// Loads settings from `vars` (and a TOML file): refused when a name is unknown.
fn settings(vars: &[(String, String)], toml: Option<&std::path::Path>) -> Settings {
    let sources = ConfigSources {
        toml: toml.map(std::path::Path::to_path_buf),
        dotenv: None,
        environment: false,
    };
    Settings::load(&sources, vars).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_image_runs_the_binary_as_a_non_root_user_with_a_healthcheck() {
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, last)| last)
        .unwrap();
    assert!(
        runtime.starts_with("debian:${DEBIAN}-slim AS runtime"),
        "{runtime}"
    );
    for line in [
        "COPY --from=build /out/ragback /usr/local/bin/ragback",
        "COPY --chown=ragback:ragback prompts /app/prompts",
        "COPY --from=build --chown=ragback:ragback /out/models /app/models",
        "USER 10001:10001",
        "ENV RAGBACK_SERVER__ADDR=0.0.0.0:8000",
        "EXPOSE 8000",
        "CMD [\"ragback\", \"healthcheck\", \"--url\", \"http://127.0.0.1:8000/health\"]",
        "org.opencontainers.image.title=\"ragback\"",
    ] {
        assert!(runtime.contains(line), "the runtime stage lacks {line:?}");
    }
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("ARG BAKE_MODELS=1"));
    // Everything the runtime stage copies from the context is in the repository.
    for line in runtime
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let source = line.split_whitespace().rev().nth(1).unwrap();
        assert!(
            repo_root().join(source).exists(),
            "{line}: {source} is missing"
        );
    }
    let ignore = read(".dockerignore");
    for path in ["target", ".env", ".git", "var", "models"] {
        assert!(
            ignore.lines().any(|l| l == path),
            ".dockerignore lacks {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_says_whether_ragback_answers() {
    let app = TestApp::spawn().await;
    let bin = env!("CARGO_BIN_EXE_ragback");
    let (ok, _, err) =
        run(std::process::Command::new(bin).args(["healthcheck", "--url", &app.url("/health")]));
    assert!(ok, "{err}");
    let (ok, _, err) = run(std::process::Command::new(bin).args([
        "healthcheck",
        "--url",
        "http://127.0.0.1:9/health",
        "--timeout-secs",
        "1",
    ]));
    assert!(!ok && err.contains("does not answer"), "{err}");
}

fn environment(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                    };
                    (k.as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_stack_starts_ragback_after_a_healthy_qdrant_and_scales_out_behind_a_proxy() {
    let compose = yaml("docker-compose.yml").remove(0);
    let services = &compose["services"];
    let qdrant = &services["qdrant"];
    let image = qdrant["image"].as_str().unwrap();
    let version: Vec<u32> = image
        .rsplit_once(":v")
        .unwrap()
        .1
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        version >= vec![1, 18, 0],
        "{image}: adding the lexical vector needs 1.18"
    );
    assert!(qdrant["healthcheck"]["test"].is_sequence());
    for name in ["ragback", "ragback-replica"] {
        let service = &services[name];
        assert_eq!(
            service["depends_on"]["qdrant"]["condition"], "service_healthy",
            "{name}"
        );
        assert!(
            service["healthcheck"]["test"]
                .as_sequence()
                .is_some_and(|t| { t.iter().any(|p| p == "healthcheck") }),
            "{name}"
        );
        assert_eq!(service["env_file"][0]["path"], ".env", "{name}");
        // The variables it sets are settings ragback knows.
        let mut vars = environment(service);
        vars.retain(|(k, v)| !(k == "RAGBACK_STORE__API_KEY" && v.starts_with("${")));
        let loaded = settings(&vars, None);
        assert_eq!(loaded.store.url, "http://qdrant:6334");
    }
    let replica = &services["ragback-replica"];
    assert_eq!(replica["profiles"][0], "replicas");
    assert_eq!(replica["deploy"]["replicas"], 2);
    let proxy = &services["proxy"];
    assert_eq!(proxy["profiles"][0], "replicas");
    assert_eq!(
        proxy["depends_on"]["ragback-replica"]["condition"],
        "service_healthy"
    );
    let nginx = read("deploy/nginx.conf");
    assert!(
        nginx.contains("set $replicas ragback-replica;")
            && nginx.contains("proxy_pass http://$replicas:8000;")
    );
    assert!(
        nginx.contains("proxy_buffering off"),
        "streams pass unbuffered"
    );
}

#[test]
fn the_kubernetes_example_is_complete_and_its_configuration_loads() {
    let docs = yaml("deploy/kubernetes/ragback.yaml");
    let by_kind: BTreeMap<&str, &Value> = docs
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d))
        .collect();
    assert_eq!(
        by_kind.keys().copied().collect::<Vec<_>>(),
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Secret",
            "Service"
        ]
    );
    let deployment = by_kind["Deployment"];
    let labels = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(
        &deployment["spec"]["template"]["metadata"]["labels"],
        labels
    );
    assert_eq!(&by_kind["Service"]["spec"]["selector"], labels);
    assert_eq!(
        &by_kind["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        labels
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let hpa = &by_kind["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(
        hpa["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert_eq!(hpa["metrics"][0]["resource"]["name"], "cpu");
    // The ConfigMap's ragback.toml, with the Secret's variables, is a configuration ragback
    // loads: a three-node cluster that survives a node.
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("ragback.toml");
    std::fs::write(
        &toml,
        by_kind["ConfigMap"]["data"]["ragback.toml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let secrets: Vec<(String, String)> = by_kind["Secret"]["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let loaded = settings(&secrets, Some(&toml));
    assert_eq!(
        (
            loaded.store.shard_number,
            loaded.store.replication_factor,
            loaded.store.write_consistency_factor
        ),
        (3, 3, 2)
    );
    assert_eq!(loaded.store.read_consistency.as_deref(), Some("majority"));
    assert_eq!(loaded.server.addr.to_string(), "0.0.0.0:8000");
}
