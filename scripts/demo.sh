#!/usr/bin/env bash
# The main job, end to end with no downloads (run by `make demo`):
#   built-in world -> BPE tokenizer -> token shards -> pretrain a small LLaMA on CPU
#   -> SFT on the world's instruction tasks -> a reward model on the world's rated preference
#   pairs -> one round of rejection sampling (best of 8, the checker as reward, SFT data
#   replayed) -> a short PPO run on the world's tasks (checker rewards, value head, KL to the
#   RS model) -> task accuracy after each stage (base, SFT, RS, PPO) -> a chat sample
# Everything lands in $OUT (default: demo/); the run folders are $OUT/run, sft, rm, rs and ppo.
# `make demo` now runs `lmforge recipe --recipe recipes/cpu-demo.yaml` (the same stages and
# settings, resumable, with a report card); this script is the same chain spelled out verb by
# verb, to read or to run by hand.
set -euo pipefail
OUT="${1:-demo}"
# Start clean, but only ever delete a folder this script made (it leaves a marker).
if [ -e "$OUT" ]; then
  if [ -f "$OUT/.lmforge-demo" ]; then rm -rf "$OUT"; else
    echo "demo: $OUT exists and was not made by the demo; pass another folder: make demo DEMO=dir" >&2
    exit 2
  fi
fi
mkdir -p "$OUT" && touch "$OUT/.lmforge-demo"
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "1/11 build the synthetic world (seeded, no downloads)"
# 2,400 training problems per task family, 4x the preset's: with 600 the SFT model memorises
# them (docs/sft.md); the test files are the same bytes either way.
lmforge world --out "$OUT/world" --size small --seed 0 --train-per-family 2400

step "2/11 train a byte-level BPE tokenizer on its pretraining text"
lmforge tokenizer train --kind bpe --vocab-size 2048 --input "$OUT/world/pretrain/train.txt" --out "$OUT/tokenizer"
lmforge tokenizer stats --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain/val.txt"

step "3/11 tokenize the corpus into memory-mapped shards"
lmforge data prepare --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain" --out "$OUT/shards" --val-fraction 0.05
lmforge data info "$OUT/shards"

step "4/11 pretrain a small LLaMA on the CPU"
# A wall-time budget rather than a step count, so the demo takes the same few
# minutes on any machine; the schedule (warmup, cosine decay) runs on elapsed time.
# A 256-token context: the instruction conversations SFT trains on fit in it.
lmforge pretrain --arch llama --preset cpu-small --model.block-size 256 --seq-len 256 \
  --data "$OUT/shards" --out "$OUT/run" --max-time "${DEMO_SECONDS:-210}" --max-steps none \
  --batch-size 16 --lr 3e-3 --min-lr 3e-4 --warmup 50

step "5/11 sample from it"
lmforge sample --run "$OUT/run" --prompt "Tom lives in" --max-new-tokens 40 --num-samples 2 --seed 1

step "6/11 instruction-tune it (SFT: chat template, packed conversations, loss on answers only)"
lmforge sft --from "$OUT/run" --data "$OUT/world/instructions/train.jsonl" \
  --val-data "$OUT/world/instructions/val.jsonl" --out "$OUT/sft" \
  --max-time "${DEMO_SFT_SECONDS:-270}" --max-steps none --batch-size 16 --lr 2e-3 --min-lr 2e-4 \
  --warmup 20 --eval-every 100

step "7/11 a reward model: the SFT model's own likelihood, scaled, LLaMA-2's margin ranking loss"
# --head likelihood: 85% on the val pairs where a scalar head reaches 81% (docs/preferences.md)
lmforge reward train --from "$OUT/sft" --data "$OUT/world/preferences/train.jsonl" \
  --val-data "$OUT/world/preferences/val.jsonl" --out "$OUT/rm" --head likelihood --beta 5 \
  --epochs 2 --batch-size 32 \
  --lr 3e-4 --min-lr 3e-5 --warmup 10 --eval-every 1000
lmforge eval reward --run "$OUT/rm" --data "$OUT/world/preferences/val.jsonl"

step "8/11 rejection sampling: 8 answers per prompt, the best by the world's checker, fine-tuned on"
# with 3 SFT conversations replayed per kept answer (docs/preferences.md)
lmforge rs --from "$OUT/sft" --reward checker --prompts "$OUT/world/instructions/train.jsonl" \
  --max-prompts "${DEMO_RS_PROMPTS:-2400}" --n 8 --iterations 1 \
  --temperature 0.7 --max-new-tokens 96 --replay "$OUT/world/instructions/train.jsonl" \
  --replay-ratio 3 --steps-per-iteration 60 --batch-size 16 --lr 2e-4 --min-lr 2e-5 --warmup 5 \
  --out "$OUT/rs"

step "9/11 PPO: answers sampled from the RS model, scored by the checker, a value head, GAE, KL to the RS model"
lmforge ppo --from "$OUT/rs" --reward checker --prompts "$OUT/world/instructions/train.jsonl" \
  --iterations "${DEMO_PPO_ITERATIONS:-10}" --episodes 64 --minibatches 4 --ppo-epochs 2 \
  --temperature 0.7 --max-new-tokens 96 --lr 2e-5 --min-lr 2e-5 --beta 0.02 --out "$OUT/ppo"

step "10/11 task accuracy after each stage: base (plain prompts), SFT, RS and PPO (chat template)"
TASKS=("$OUT/world/instructions/test.jsonl" "$OUT/world/instructions/heldout_templates.jsonl"
       "$OUT/world/instructions/heldout_tasks.jsonl")
LIMIT="${DEMO_EVAL_LIMIT:-0}"  # 0: every record
lmforge --quiet eval tasks --run "$OUT/run" --no-template --data "${TASKS[@]}" --limit "$LIMIT" \
  --max-new-tokens 96 --batch-size 64 --out "$OUT/eval_base" > /dev/null
for stage in sft rs ppo; do
  lmforge --quiet eval tasks --run "$OUT/$stage" --data "${TASKS[@]}" --limit "$LIMIT" \
    --max-new-tokens 96 --batch-size 64 --out "$OUT/eval_$stage" > /dev/null
done
lmforge eval compare base="$OUT/eval_base" sft="$OUT/eval_sft" rs="$OUT/eval_rs" ppo="$OUT/eval_ppo" \
  --plot "$OUT/eval_compare.png"

step "11/11 chat with the PPO model"
lmforge sample --run "$OUT/ppo" --chat --prompt "What is 3 + 4? Reply with just the number." \
  --max-new-tokens 20 --temperature 0

printf '\nDone in %ss. Run folders: %s/run (pretrained), %s/sft (instruction-tuned), %s/rm (reward\n' \
  "$(( $(date +%s) - t0 ))" "$OUT" "$OUT" "$OUT"
printf 'model), %s/rs (rejection-sampled), %s/ppo (PPO): config.yaml, checkpoints/, metrics.jsonl,\n' "$OUT" "$OUT"
printf 'plots/, report.md; task evaluations in %s/eval_base, eval_sft, eval_rs, eval_ppo\n' "$OUT"
