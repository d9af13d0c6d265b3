# Sourced by the evaluation demos: `fake_llm DIR` sets `url` to the fake LLM's address — FAKE_URL
# when one already runs (the scripts' tests start one in process), else the testkit's fake-openai
# ($fake) started here, its address read from DIR/fake.url, stopped when the script exits.
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
