# Sourced by the evaluation demos: what they share.

# `demo_out DIR`: the demo's output directory `out` (OUT, else DIR), emptied, and the binaries it
# runs: `ragback` (RAGBACK) and `fake` (FAKE, the testkit's fake-openai).
demo_out() {
    out=${OUT:-$1}
    ragback=${RAGBACK:-target/debug/ragback}
    fake=${FAKE:-target/debug/fake-openai}
    rm -rf "$out"
    mkdir -p "$out"
}

# `fake_llm DIR` sets `url` to the fake LLM's address — FAKE_URL when one already runs (the
# scripts' tests start one in process), else $fake started here, its address read from
# DIR/fake.url, stopped when the script exits.
fake_llm() {
    if [ -n "${FAKE_URL:-}" ]; then
        url=$FAKE_URL
        return
    fi
    "$fake" > "$1/fake.url" &
    fake_pid=$!
    trap 'kill $fake_pid 2>/dev/null || true' EXIT
    for _ in $(seq 100); do [ -s "$1/fake.url" ] && break; sleep 0.1; done
    url=$(head -n 1 "$1/fake.url")
}

# `demo_env`: ragback in process answers with the fake's models at $url, with no embedder and no
# facts, its store in $out; the judge is the fake too.
demo_env() {
    export RAGBACK_LLM__PROVIDER=openai RAGBACK_LLM__BASE_URL="$url/v1" \
        RAGBACK_EMBEDDER__PROVIDER=none RAGBACK_STORE__PATH="$out/store" \
        RAGBACK_EVAL__JUDGE__BASE_URL="$url/v1" RAGBACK_EVAL__JUDGE__API_KEY=demo RUST_LOG=warn
}

# `run ARGS…`: `ragback ARGS…`, shown first, configured by the environment alone (no files).
run() { echo "\$ ragback $*"; "$ragback" --config /nonexistent --env-file /nonexistent "$@"; }
