#!/bin/bash
# Times the demo /generate of a keyless ragback (local embedder, local chat model) while busy
# loops hold cores: docs/benchmarks.md, "The local chat model on a busy machine".
#   scripts/busy-core-timing.sh THREADS BUSY_LOOPS [REQUESTS]
# Needs `make model` and a release build (BIN=target/release/ragback by default).
set -euo pipefail
threads=$1 busy=$2 requests=${3:-5}
bin=${BIN:-target/release/ragback}
port=$((18000 + threads * 10 + busy))
store=$(mktemp -d)
RAGBACK_STORE__PATH=$store RAGBACK_LLM__PROVIDER=local RAGBACK_LLM__LOCAL__THREADS=$threads \
  RUST_LOG=warn "$bin" --env-file /nonexistent --config /nonexistent.toml serve \
  --addr "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
loops=()
cleanup() { kill "${loops[@]}" "$server" 2>/dev/null || true; rm -rf "$store"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.3; done
for _ in $(seq 1 "$busy"); do (while :; do :; done) & loops+=($!); done
body='{"messages":[{"role":"character","text":"*fist bumps* Yo John! Been ages, bro."},
{"role":"user","text":"I finally ran the London marathon!"}],"user":{"id":"john","name":"John"},
"character":{"id":"blaze","name":"Blaze","description":"A street persona from Brooklyn."},
"generation":{"temperature":0.0,"seed":1,"max_tokens":60}}'
for _ in $(seq 1 "$requests"); do
  curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -H 'content-type: application/json' \
    -d "$body" "http://127.0.0.1:$port/generate"
done
