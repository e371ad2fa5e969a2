#!/usr/bin/env bash
# The main job, end to end with no downloads (run by `make demo`):
#   built-in world -> BPE tokenizer -> token shards -> pretrain a small LLaMA on CPU -> samples
# Everything lands in $OUT (default: demo/); the run folder is $OUT/run.
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

step "1/5 build the synthetic world (seeded, no downloads)"
lmforge world --out "$OUT/world" --size small --seed 0

step "2/5 train a byte-level BPE tokenizer on its pretraining text"
lmforge tokenizer train --kind bpe --vocab-size 2048 --input "$OUT/world/pretrain/train.txt" --out "$OUT/tokenizer"
lmforge tokenizer stats --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain/val.txt"

step "3/5 tokenize the corpus into memory-mapped shards"
lmforge data prepare --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain" --out "$OUT/shards" --val-fraction 0.05
lmforge data info "$OUT/shards"

step "4/5 pretrain a small LLaMA on the CPU"
# A wall-time budget rather than a step count, so the demo takes the same few
# minutes on any machine; the schedule (warmup, cosine decay) runs on elapsed time.
lmforge pretrain --arch llama --preset cpu-small --data "$OUT/shards" --out "$OUT/run" \
  --max-time "${DEMO_SECONDS:-240}" --max-steps none --batch-size 32 --lr 3e-3 --min-lr 3e-4 --warmup 50

step "5/5 sample from it"
lmforge sample --run "$OUT/run" --prompt "Tom lives in" --max-new-tokens 40 --num-samples 2 --seed 1

printf '\nDone in %ss. Run folder: %s/run (config.yaml, checkpoints/, metrics.jsonl, plots/, report.md)\n' \
  "$(( $(date +%s) - t0 ))" "$OUT"
