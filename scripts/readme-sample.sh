#!/bin/bash
# Regenerates the quick start's transcript in README.md and README-EN.md from a real run of this
# build: a keyless ragback (the local embedder and chat model) on a fresh store seeded with
# data/facts.json, its start-up log, and the README's own /generate request and its answer.
#   scripts/readme-sample.sh            (BIN=target/release/ragback by default; needs `make model`)
# The e2e test `docs::the_quick_start_sample_has_the_shape_of_a_real_answer` checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/ragback}
port=${PORT:-18765}
store=$(mktemp -d)
log=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$store" "$log"' EXIT
RAGBACK_STORE__PATH=$store NO_COLOR=1 "$bin" --env-file /nonexistent --config /nonexistent.toml \
  serve --addr "127.0.0.1:$port" --seed data/facts.json 2>"$log" &
server=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.3; done
answer=$(curl -s "localhost:$port/generate" -H 'content-type: application/json' -d '{
    "messages": [{"role": "user", "text": "Hey Blaze! Long time no see"},
                 {"role": "character", "text": "*fist bumps* Yo John! Been ages, bro."},
                 {"role": "user", "text": "I finally ran the London marathon!"}],
    "user": {"id": "john", "name": "John", "age": 23},
    "character": {"id": "blaze", "name": "Blaze", "age": 19, "description": "Street persona from Brooklyn, talks in slang."},
    "scenario": "You meet John at a bar after a long time apart.",
    "generation": {"seed": 7}}')
ANSWER=$answer LOG=$log STORE=$store PORT=$port python3 - <<'PY'
import json, os, re
answer = json.loads(os.environ["ANSWER"])
body = "{\n" + ",\n".join(f'  "{k}": {json.dumps(v, ensure_ascii=False)}' for k, v in answer.items()) + "\n}"
wanted = ("local chat model loaded", "services configured", "variants in force", "facts seeded",
          "ragback is listening")
log = []
for line in open(os.environ["LOG"]):
    m = re.match(r"^\S+\s+INFO\s+\S+?: (.*)$", line.strip())
    if m and m.group(1).startswith(wanted):
        # As `make run` shows it: its store, its port.
        shown = m.group(1).replace(os.environ["STORE"], "var/qdrant-edge")
        log.append("… INFO " + shown.replace("127.0.0.1:" + os.environ["PORT"], "127.0.0.1:8000"))
for readme in ("README.md", "README-EN.md"):
    text = open(readme).read()
    # The log lines of `make run`, then the answer after the request.
    text = re.sub(r"(?m)^… INFO .*\n(?:… INFO .*\n)*", "\n".join(log) + "\n", text, count=1)
    text = re.sub(r'(    "generation": \{"seed": 7\}\}\'\n)\{\n.*?\n\}\n', lambda m: m.group(1) + body + "\n",
                  text, count=1, flags=re.S)
    open(readme, "w").write(text)
print(body)
PY
