#!/usr/bin/env bash
# The main job, end to end with no downloads (run by `make demo`):
#   built-in world -> BPE tokenizer -> token shards -> pretrain a small LLaMA on CPU -> samples
# Everything lands in $OUT (default: demo/); the run folder is $OUT/run.
set -euo pipefail
OUT="${1:-demo}"
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "1/5 build the synthetic world (seeded, no downloads)"
lmforge world --out "$OUT/world" --size small --seed 0 --force

step "2/5 train a byte-level BPE tokenizer on its pretraining text"
lmforge tokenizer train --kind bpe --vocab-size 2048 --input "$OUT/world/pretrain/train.txt" --out "$OUT/tokenizer" --force
lmforge tokenizer stats --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain/val.txt"

step "3/5 tokenize the corpus into memory-mapped shards"
lmforge data prepare --tokenizer "$OUT/tokenizer" --input "$OUT/world/pretrain" --out "$OUT/shards" --val-fraction 0.05 --force
lmforge data info "$OUT/shards"

step "4/5 pretrain a small LLaMA on the CPU"
lmforge pretrain --arch llama --preset cpu-small --data "$OUT/shards" --out "$OUT/run" --force ${DEMO_PRETRAIN_ARGS:-}

step "5/5 sample from it"
lmforge sample --run "$OUT/run" --prompt "Anna lives in" --max-new-tokens 40 --num-samples 2 --seed 1

printf '\nDone in %ss. Run folder: %s/run (config.yaml, checkpoints/, metrics.jsonl, plots/, report.md)\n' \
  "$(( $(date +%s) - t0 ))" "$OUT"
