#!/usr/bin/env bash
# A policy that half-solves arithmetic and multi-step problems, and what PPO, GRPO and
# rejection sampling do from it (docs/ppo.md, "A policy that half-solves the two families"):
#   recipes/cpu-math-specialist.yaml (world, BPE with split digits, pretrain, SFT, in steps)
#   -> 1,500 SFT steps on the world's arithmetic and multi-step records alone
#   -> RL prompts: those families' problems of a larger world that SFT never saw
#   -> PPO, GRPO, rejection sampling, and a plain-SFT control, each evaluated greedy on the
#      450 arithmetic and multi-step test records, compared on the records (McNemar z).
# About 50 minutes on 2 CPU cores. Everything lands in $OUT (default: math/).
set -euo pipefail
RECIPE="$(cd "$(dirname "$0")/.." && pwd)/recipes/cpu-math-specialist.yaml"
OUT="${1:-math}"
mkdir -p "$OUT"
cd "$OUT"
step() { printf '\n== %s\n' "$*"; }
EVAL=(--max-new-tokens 96 --batch-size 64)

step "1/7 world, tokenizer, pretraining, SFT on every family"
lmforge recipe --recipe "$RECIPE" --out d

step "2/7 the two families' records; fresh problems from a larger world of the same seed"
lmforge world --out w8 --size small --seed 0 --train-per-family 8000 --pretrain-chars 100000 >/dev/null
python3 - <<'PY'
import json

def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

FAMILIES = ("arithmetic", "multi_step")
for split in ("train", "val", "test"):
    rows = records(f"d/world/instructions/{split}.jsonl")
    write(f"am_{split}.jsonl", [r for r in rows if r["task"] in FAMILIES])
seen = {r["problem_id"] for r in records("am_train.jsonl")}
fresh = [r for r in records("w8/instructions/train.jsonl")
         if r["task"] in FAMILIES and r["problem_id"] not in seen]
write("am_fresh.jsonl", fresh)
print(f"am_fresh.jsonl: {len(fresh)} records whose problems SFT never saw")
PY

step "3/7 the specialist: 1,500 SFT steps on the two families"
lmforge sft --from d/sft --data am_train.jsonl --val-data am_val.jsonl --out sft_am \
  --max-steps 1500 --batch-size 16 --lr 1e-3 --min-lr 1e-4 --warmup 20 --eval-every 250
lmforge eval tasks --run d/sft --data am_test.jsonl "${EVAL[@]}" --out eval_sft --force
lmforge eval tasks --run sft_am --data am_test.jsonl "${EVAL[@]}" --out eval_sft_am --force

step "4/7 PPO and GRPO on the fresh problems"
lmforge ppo --from sft_am --reward checker --prompts am_fresh.jsonl --out ppo --force \
  --iterations 30 --episodes 256 --minibatches 8 --ppo-epochs 2 --temperature 0.7 \
  --max-new-tokens 96 --lr 5e-5 --min-lr 5e-5 --beta 0.02 --batch-size 64
lmforge grpo --from sft_am --reward checker --prompts am_fresh.jsonl --out grpo --force \
  --iterations 40 --episodes 256 --n 16 --minibatches 2 --ppo-epochs 1 --temperature 1.0 \
  --max-new-tokens 96 --lr 5e-5 --min-lr 5e-5 --beta 0.04 --batch-size 64
lmforge eval rl PPO=ppo GRPO=grpo --window 10 --plot ppo_vs_grpo.png

step "5/7 rejection sampling on 4,000 fresh problems, SFT records replayed"
lmforge rs --from sft_am --reward checker --prompts am_fresh.jsonl --max-prompts 4000 --n 8 \
  --temperature 0.7 --max-new-tokens 96 --replay am_train.jsonl --replay-ratio 1 \
  --steps-per-iteration 150 --batch-size 16 --lr 2e-4 --min-lr 2e-5 --warmup 5 --out rs --force

step "6/7 the control: as many more SFT steps on the old records"
lmforge sft --from sft_am --data am_train.jsonl --out sft_more --max-steps 150 --batch-size 16 \
  --lr 2e-4 --min-lr 2e-5 --warmup 5 --val-fraction 0 --force

step "7/7 every model on the 450 test records, paired against the specialist"
for run in ppo grpo rs sft_more; do
  lmforge eval tasks --run "$run" --data am_test.jsonl "${EVAL[@]}" --out "eval_$run" --force
done
lmforge eval compare sft=eval_sft_am ppo=eval_ppo grpo=eval_grpo rs=eval_rs \
  "more sft=eval_sft_more" base_sft=eval_sft | tee compare.md
