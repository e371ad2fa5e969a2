#!/usr/bin/env bash
# The main job, end to end with no downloads (run by `make demo`):
#   built-in world -> BPE tokenizer -> token shards -> pretrain a small LLaMA on CPU
#   -> SFT on the world's instruction tasks -> task accuracy, base vs SFT -> a chat sample
# Everything lands in $OUT (default: demo/); the run folders are $OUT/run and $OUT/sft.
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

step "1/8 build the synthetic world (seeded, no downloads)"
lmforge world --out "$OUT/world" --size small --seed 0

step "2/8 train a byte-level BPE tokenizer on its pretraining text"
lmforge tokenizer train --kind bpe --vocab-size 2048 --input "$OUT/world/pretrain/train.txt" --out "$OUT/tokenizer"
lmforge tokenizer stats --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain/val.txt"

step "3/8 tokenize the corpus into memory-mapped shards"
lmforge data prepare --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain" --out "$OUT/shards" --val-fraction 0.05
lmforge data info "$OUT/shards"

step "4/8 pretrain a small LLaMA on the CPU"
# A wall-time budget rather than a step count, so the demo takes the same few
# minutes on any machine; the schedule (warmup, cosine decay) runs on elapsed time.
# A 256-token context: the instruction conversations SFT trains on fit in it.
lmforge pretrain --arch llama --preset cpu-small --model.block-size 256 --seq-len 256 \
  --data "$OUT/shards" --out "$OUT/run" --max-time "${DEMO_SECONDS:-240}" --max-steps none \
  --batch-size 16 --lr 3e-3 --min-lr 3e-4 --warmup 50

step "5/8 sample from it"
lmforge sample --run "$OUT/run" --prompt "Tom lives in" --max-new-tokens 40 --num-samples 2 --seed 1

step "6/8 instruction-tune it (SFT: chat template, packed conversations, loss on answers only)"
lmforge sft --from "$OUT/run" --data "$OUT/world/instructions/train.jsonl" \
  --val-data "$OUT/world/instructions/val.jsonl" --out "$OUT/sft" \
  --max-time "${DEMO_SFT_SECONDS:-300}" --max-steps none --batch-size 16 --lr 2e-3 --min-lr 2e-4 \
  --warmup 20 --eval-every 100

step "7/8 task accuracy: the base model (plain prompts) vs the SFT model (chat template)"
TASKS=("$OUT/world/instructions/test.jsonl" "$OUT/world/instructions/heldout_templates.jsonl"
       "$OUT/world/instructions/heldout_tasks.jsonl")
LIMIT="${DEMO_EVAL_LIMIT:-300}"
lmforge --quiet eval tasks --run "$OUT/run" --no-template --data "${TASKS[@]}" --limit "$LIMIT" \
  --max-new-tokens 96 --batch-size 64 --out "$OUT/eval_base" > /dev/null
lmforge --quiet eval tasks --run "$OUT/sft" --data "${TASKS[@]}" --limit "$LIMIT" \
  --max-new-tokens 96 --batch-size 64 --out "$OUT/eval_sft" > /dev/null
lmforge eval compare base="$OUT/eval_base" sft="$OUT/eval_sft" --plot "$OUT/eval_compare.png"

step "8/8 chat with the SFT model"
lmforge sample --run "$OUT/sft" --chat --prompt "What is 3 + 4? Reply with just the number." \
  --max-new-tokens 20 --temperature 0

printf '\nDone in %ss. Run folders: %s/run (pretrained) and %s/sft (instruction-tuned): config.yaml,\n' \
  "$(( $(date +%s) - t0 ))" "$OUT" "$OUT"
printf 'checkpoints/, metrics.jsonl, plots/, report.md; task evaluations in %s/eval_base, %s/eval_sft\n' \
  "$OUT" "$OUT"
