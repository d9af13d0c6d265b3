#!/usr/bin/env bash
# `make eval-long`: the rolling summary on vs off, on long dialogues (data/eval/long-dialogues.jsonl:
# facts stated in the first turns, asked about after 150 turns of small talk). Both arms answer
# with the same model through ragback in process; B sends each dialogue as a conversation, its
# summary brought up to date before each reply. The windows are the replies to the late questions,
# with the whole history as context; the prompt holds its last 20 messages. Offline, the model is
# the testkit's fake-openai `demo-recall` (it answers from what its prompt holds) and the judge its
# `oracle`; MODEL, JUDGE and the variables below point it at real ones (docs/long-conversations.md).
set -euo pipefail
cd "$(dirname "$0")/.."

model=${MODEL:-demo-recall}
judge=${JUDGE:-oracle}
. scripts/fake-llm.sh
demo_out var/eval-long
if [ -n "${FAKE_URL:-}" ] || [ -z "${RAGBACK_LLM__BASE_URL:-}" ]; then
    fake_llm "$out"
fi
if [ -n "${url:-}" ]; then
    export RAGBACK_LLM__PROVIDER=openai RAGBACK_LLM__BASE_URL="$url/v1" \
        RAGBACK_EVAL__JUDGE__BASE_URL="$url/v1" RAGBACK_EVAL__JUDGE__API_KEY=demo
fi
# The summaries are written by the arm's model too.
export RAGBACK_EMBEDDER__PROVIDER=none RAGBACK_STORE__PATH="$out/store" RUST_LOG=warn \
    RAGBACK_SUMMARY__MODEL="$model"

run eval windows --dialogues data/eval/long-dialogues.jsonl --out "$out/windows.jsonl" \
    --window 400 --stride 2 --logged-model A-late --buckets begin=1,end=1 --max-per-dialogue 4 \
    --seed 0
run eval replay --windows "$out/windows.jsonl" --out "$out/replies.jsonl" --facts none \
    --arm A=local,model="$model" --arm B=local,model="$model",summary=on
run eval pairwise --windows "$out/windows.jsonl" --replies "$out/replies.jsonl" \
    --out "$out/judgments.jsonl" --judge-model "$judge"
run eval report --judgments "$out/judgments.jsonl" --html "$out/report.html" --json "$out/report.json"
