#!/usr/bin/env bash
# `make eval-sim`: offline replay and on-policy simulation of one candidate, side by side, with a
# calibrated judge — against a local fake LLM (the testkit's fake-openai: the arms `demo-a` and
# `demo-late`, a candidate that is better only once a conversation is past its fifth reply; a
# user simulator scripted per persona; the `oracle` judge and the `moderator`). Leaves
# var/eval-sim/report.html and report.json.
#
# The replay draws early windows (short contexts), so it cannot see the candidate's strength;
# the simulation lets each arm talk for eight replies and judges whole conversations, so it
# can. The A/A checks (the judge against a second sample of the same arm) and the agreement with
# "human" labels calibrate the judge. The demo has no people: its labels (on the replayed pairs)
# are the oracle's verdicts with every fifth one changed, written by this script to show the
# section.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/fake-llm.sh
demo_out var/eval-sim
fake_llm "$out"
demo_env
export RAGBACK_EVAL__SIMULATOR__BASE_URL="$url/v1" RAGBACK_EVAL__SIMULATOR__API_KEY=demo \
    RAGBACK_EVAL__SIMULATOR__MODEL=simulator
arms=(--arm A=local,model=demo-a --arm B=local,model=demo-late)
prices=(--price demo-a=0.02:0.04 --price demo-late=0.05:0.10)

# Offline replay: early windows (at most 7 messages of context), two samples each.
run eval windows --dialogues data/eval/dialogues.jsonl --out "$out/windows.jsonl" \
    --window 8 --buckets begin=1 --sample 60 --seed 0 --strata period
run eval replay --windows "$out/windows.jsonl" --out "$out/replies.jsonl" --facts none \
    "${arms[@]}" "${prices[@]}" --samples 2
run eval pairwise --windows "$out/windows.jsonl" --replies "$out/replies.jsonl" \
    --out "$out/judgments.jsonl" --judge-model oracle --price oracle=2.5:10
run eval pairwise --aa --a B --windows "$out/windows.jsonl" --replies "$out/replies.jsonl" \
    --out "$out/aa-judgments.jsonl" --judge-model oracle --price oracle=2.5:10

# On-policy simulation: the same seeds for both arms, eight replies, two samples.
cat data/eval/dialogues.jsonl data/eval/persona-seeds.jsonl > "$out/seeds.jsonl"
run eval simulate --dialogues "$out/seeds.jsonl" --out "$out/sim" --facts none \
    "${arms[@]}" "${prices[@]}" --price simulator=0.15:0.60 --turns 8 --samples 2 --seed 0
run eval pairwise --unit dialogue --dialogues "$out/sim/dialogues.jsonl" \
    --out "$out/sim-judgments.jsonl" --judge-model oracle --price oracle=2.5:10
run eval pairwise --unit dialogue --aa --a B --dialogues "$out/sim/dialogues.jsonl" \
    --out "$out/sim-aa-judgments.jsonl" --judge-model oracle --price oracle=2.5:10
run eval moderate --windows "$out/sim/windows.jsonl" --replies "$out/sim/replies.jsonl" \
    --out "$out/sim-moderation.jsonl" --judge-model moderator --price moderator=2.5:10

# "Human" labels for the calibration section (see the header: not from people).
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
flip = {"A": "B", "B": "tie", "tie": "A"}
n = 0
with open(f"{out}/human-labels.jsonl", "w") as labels:
    for name, key in (("judgments", "window_id"),):
        verdicts = {}
        for line in open(f"{out}/{name}.jsonl"):
            row = json.loads(line)
            if row.get("kind") != "judgment" or row.get("sample", 0) != 0:
                continue
            arm = row.get("verdict_arm") or ("tie" if row["status"] == "identical" else None)
            verdicts.setdefault((row["pair"], row["criterion"]), set()).add(arm)
        for (pair, criterion), seen in sorted(verdicts.items()):
            if None in seen:
                continue
            verdict = seen.pop() if len(seen) == 1 else "tie"
            n += 1
            if n % 5 == 0:
                verdict = flip[verdict]
            labels.write(json.dumps({key: pair, "criterion": criterion, "verdict": verdict,
                                     "annotator": "demo"}) + "\n")
PY
run eval agree --human "$out/human-labels.jsonl" --judgments "$out/judgments.jsonl" \
    --judgments "$out/sim-judgments.jsonl"
run eval report --judgments "$out/judgments.jsonl" --judgments "$out/aa-judgments.jsonl" \
    --judgments "$out/sim-judgments.jsonl" --judgments "$out/sim-aa-judgments.jsonl" \
    --moderation "$out/sim-moderation.jsonl" --simulated "$out/sim/dialogues.jsonl" \
    --human "$out/human-labels.jsonl" --strata period \
    --html "$out/report.html" --json "$out/report.json"
