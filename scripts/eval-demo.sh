#!/usr/bin/env bash
# `make eval-demo`: the whole evaluation pipeline — import, windows, replay, pairwise, moderate,
# report — on the demo corpus (data/eval), against a local fake LLM (the testkit's fake-openai:
# two demo models and the judges). Leaves var/eval-demo/report.html and report.json.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/fake-llm.sh
demo_out var/eval-demo
fake_llm "$out"
demo_env

cp data/eval/dialogues.jsonl "$out/dialogues.jsonl"
run eval import --chat-log data/eval/saved-chat.jsonl --model-label A-2025-10 --id saved-1 \
    --append-to "$out/dialogues.jsonl"
run eval windows --dialogues "$out/dialogues.jsonl" --out "$out/windows.jsonl" --sample 60 --seed 0
run eval replay --windows "$out/windows.jsonl" --out "$out/replies.jsonl" --facts none \
    --arm A=local,model=demo-a --arm B=local,model=demo-b \
    --price demo-a=0.02:0.04 --price demo-b=0.05:0.10
run eval pairwise --windows "$out/windows.jsonl" --replies "$out/replies.jsonl" \
    --out "$out/judgments.jsonl" --judge-model oracle --price oracle=2.5:10
run eval moderate --windows "$out/windows.jsonl" --replies "$out/replies.jsonl" \
    --out "$out/moderation.jsonl" --judge-model moderator --price moderator=2.5:10
run eval report --judgments "$out/judgments.jsonl" --moderation "$out/moderation.jsonl" \
    --html "$out/report.html" --json "$out/report.json"
