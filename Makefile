# ragback — common tasks. `make help` lists them.

CARGO   ?= cargo
RELEASE := $(CARGO) run --release --quiet -p ragback-presentation --bin ragback --

.DEFAULT_GOAL := help
.PHONY: help run build test lint fmt add-facts bench dc.up dc.down clean

help: ## List the targets
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

run: ## Start the API on :8000 (embedded Qdrant Edge store; seeds data/facts.json when an embedder is configured)
	$(RELEASE) serve --seed data/facts.json

build: ## Build the release binary (target/release/ragback)
	$(CARGO) build --release -p ragback-presentation --bin ragback

test: ## Run every test (unit, router, end-to-end)
	$(CARGO) test --workspace --locked

lint: ## Check formatting and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

add-facts: ## Embed and store data/facts.json (idempotent; needs an embedder; goes through the API while `make run` is up)
	$(RELEASE) facts add data/facts.json

bench: ## Measure the pipeline's own overhead
	$(CARGO) bench -p ragback-presentation --bench pipeline

dc.up: ## Start a Qdrant server with docker compose (needs Docker)
	docker compose up -d --wait

dc.down: ## Stop the Qdrant server
	docker compose down

clean: ## Remove build output and the local store
	$(CARGO) clean
	rm -rf var
