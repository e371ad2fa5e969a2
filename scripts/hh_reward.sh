#!/usr/bin/env bash
# A reward model on real preference data at CPU scale: Anthropic HH-RLHF (harmless-base
# test split, ../shared/data/preferences/), 80% to train on, the held-out 20% to report.
#   split (seeded, by record) -> BPE on the train transcripts -> pretrain a small LLaMA on
#   the train transcripts (chosen and rejected: the text it will judge) -> reward train on
#   the train pairs -> eval reward on the held-out pairs.
# Nothing of the held-out 20% is seen by the tokenizer, the pretraining or the reward model.
# Usage: scripts/hh_reward.sh [OUT] (default hh/); HH_PRETRAIN_STEPS, HH_RM_EPOCHS, and
# HH_RM_ARGS: more `reward train` flags (e.g. "--head likelihood --beta 5").
# Step budgets, not time budgets: the same model on a busy machine as on an idle one.
set -euo pipefail
OUT="${1:-hh}"
HH="${HH_FILE:-../shared/data/preferences/hh_rlhf_harmless_base_test.jsonl.gz}"
if [ -e "$OUT" ]; then
  if [ -f "$OUT/.lmforge-hh" ]; then rm -rf "$OUT"; else
    echo "hh_reward: $OUT exists and was not made by this script; pass another folder" >&2
    exit 2
  fi
fi
mkdir -p "$OUT/data" && touch "$OUT/.lmforge-hh"
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "1/5 split HH-RLHF 80/20 (seed 0) and write the train transcripts as text"
python - "$HH" "$OUT/data" <<'PY'
import gzip, json, random, sys
from pathlib import Path
src, out = sys.argv[1], Path(sys.argv[2])
rows = [line for line in gzip.open(src, "rt", encoding="utf-8") if line.strip()]
random.Random(0).shuffle(rows)
k = len(rows) * 8 // 10
(out / "train.jsonl").write_text("".join(rows[:k]), encoding="utf-8")
(out / "heldout.jsonl").write_text("".join(rows[k:]), encoding="utf-8")
with open(out / "text.txt", "w", encoding="utf-8") as f:
    for line in rows[:k]:
        rec = json.loads(line)
        for side in ("chosen", "rejected"):
            f.write(rec[side].strip().replace("\n\n", "\n") + "\n\n")
print(f"{k} train records, {len(rows) - k} held out")
PY

step "2/5 BPE tokenizer on the train transcripts"
lmforge tokenizer train --kind bpe --vocab-size 4096 --input "$OUT/data/text.txt" --out "$OUT/tokenizer"
lmforge data prepare --tokenizer "$OUT/tokenizer" --input "$OUT/data/text.txt" --out "$OUT/shards" --val-fraction 0.05

step "3/5 pretrain a small LLaMA on them"
lmforge pretrain --arch llama --preset cpu-small --model.block-size 256 --seq-len 256 \
  --data "$OUT/shards" --out "$OUT/lm" --max-steps "${HH_PRETRAIN_STEPS:-400}" \
  --batch-size 16 --lr 3e-3 --min-lr 3e-4 --warmup 50

step "4/5 reward model on the train pairs"
lmforge reward train --from "$OUT/lm" --data "$OUT/data/train.jsonl" --val-data "$OUT/data/heldout.jsonl" \
  --out "$OUT/rm" --epochs "${HH_RM_EPOCHS:-2}" --batch-size 16 --lr 1e-4 --warmup 20 \
  --eval-every 100 --save-every 0 ${HH_RM_ARGS:-}

step "5/5 held-out pairwise accuracy"
lmforge eval reward --run "$OUT/rm" --data "$OUT/data/heldout.jsonl" --out "$OUT/eval"
echo "hh_reward: done in $(( $(date +%s) - t0 )) s; results in $OUT/eval/results.md"
