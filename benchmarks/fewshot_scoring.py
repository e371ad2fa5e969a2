"""Few-shot label scoring throughput: lmforge's shared-cache scorer vs a `transformers` forward
per label.

The task is AG News in the "Calibrate Before Use" format (4 labels, Sci/Tech scored
by two words, so 5 continuations per example), k = 4 shown examples (balanced,
seed 0), the first N test examples of the fixed test subset (or, without
``../shared/data``, the world's topic set). Both sides score the same token ids
with the same weights: a random LLaMA (d_model 256, 6 layers, 4 heads, fp32,
context 1024) over a byte-level BPE trained on the train pool's text, exported
with `lmforge.export.hf.export_hf` and loaded by `transformers`.

* lmforge: `lmforge.prompting.scoring.score_prompts`: each prompt prefilled once in
  a KV cache, the label continuations continuing it (one forward for all labels of
  a batch); the k shown examples, which every prompt shares, prefilled once for
  the whole call. Also timed with that prefix sharing off (``share_prefix=False``:
  each prompt prefilled once, left-padded batches): what the cache sharing between
  labels alone gives.
* transformers: one full forward of prompt + label per (example, label word), as
  lm-evaluation-harness scores multiple choice, batched (16 sequences, sorted by
  length, right-padded with an attention mask), log-softmax and gather of the
  label tokens.

The scores of the two sides are compared (max |difference|), which also warms
both up. Rates are examples per second from the best of ``--repeats`` timed runs
(a shared machine only ever slows a run down). Run:

    .venv/bin/python benchmarks/fewshot_scoring.py            # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/fewshot_scoring.py --quick    # smoke run, writes no result
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench import SHARED_DATA, best_time, print_table, write_result  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

MODEL = dict(n_layer=6, n_head=4, d_model=256, block_size=1024, tie_embeddings=True)
VOCAB = 4096
K = 4


def make_task(work: Path):
    """AG News (reference data) or, without it, the world's topic set."""
    from lmforge.prompting.tasks import load_task

    data = SHARED_DATA / "classification"
    if (data / "agnews").is_dir():
        return load_task("agnews", data_dir=data)
    from lmforge.data.world.build import build_world
    from lmforge.data.world.config import WorldConfig

    world = work / "world"
    build_world(WorldConfig(out=str(world), size="small", seed=0, force=True))
    return load_task("topic", world=world)


def make_tokenizer(task, folder: Path):
    """A byte-level BPE with lmforge's special tokens, trained on the task's texts."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from lmforge.tokenizers import SPECIAL_TOKENS, Tokenizer

    engine = HFTokenizer(models.BPE())
    engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    engine.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    texts = [" ".join(ex.fields.values()) for ex in task.train + task.test[:2000]]
    engine.train_from_iterator(texts, trainer)
    tok = Tokenizer(engine, "bpe")
    tok.save(folder)
    return tok


def hf_scores(hf, prompts, choices, batch: int) -> torch.Tensor:
    """(N, S) summed label log-probs, one forward of prompt + choice per pair (batched)."""
    pairs = [(i, j) for i in range(len(prompts)) for j in range(len(choices))]
    seqs = {(i, j): prompts[i] + choices[j] for i, j in pairs}
    pairs.sort(key=lambda p: -len(seqs[p]))  # lm-eval's order: longest first, less padding
    out = torch.zeros(len(prompts), len(choices), dtype=torch.float64)
    with torch.inference_mode():
        for s in range(0, len(pairs), batch):
            chunk = pairs[s : s + batch]
            T = max(len(seqs[p]) for p in chunk)
            ids = torch.zeros(len(chunk), T, dtype=torch.long)
            mask = torch.zeros(len(chunk), T, dtype=torch.long)
            for r, p in enumerate(chunk):
                ids[r, : len(seqs[p])] = torch.tensor(seqs[p])
                mask[r, : len(seqs[p])] = 1
            lp = torch.log_softmax(hf(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for r, (i, j) in enumerate(chunk):
                n, c = len(prompts[i]), choices[j]
                pos = torch.arange(n - 1, n - 1 + len(c))
                out[i, j] = lp[r, pos, torch.tensor(c)].double().sum()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=48, help="test examples scored")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="prompts (ours) / sequences (peer)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="16 examples, 1 repeat, no result file")
    args = ap.parse_args()
    if args.quick:
        args.examples, args.repeats = 16, 1
    torch.set_num_threads(args.threads)

    import transformers

    from lmforge.export.hf import export_hf
    from lmforge.models import build_model
    from lmforge.prompting.builder import PromptBuilder, order_demos, sample_demos, take_test
    from lmforge.prompting.scoring import score_prompts

    transformers.logging.set_verbosity_error()
    work = Path(tempfile.mkdtemp(prefix="fewshot_bench_"))
    task = make_task(work)
    tok = make_tokenizer(task, work / "tok")
    torch.manual_seed(0)
    model = build_model("llama", {**MODEL, "vocab_size": tok.vocab_size}).eval()
    export_hf(model, tok, work / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(work / "hf", dtype=torch.float32)
    hf.eval()

    b = PromptBuilder(task, tok)
    demos = order_demos(sample_demos(task, K, seed=0), seed=0)
    test = take_test(task, args.examples)
    prompts = b.build_many(demos, test)
    ids = [p.ids for p in prompts]
    choices = [c for words in b.label_ids() for c in words]
    n = len(prompts)

    def ours(share=None):
        return score_prompts(model, b, prompts, batch_size=args.batch, share_prefix=share)

    got = ours().word_scores
    peer = hf_scores(hf, ids, choices, args.batch)
    diff = (got - peer).abs().max().item()
    agree = (got.argmax(-1) == peer.argmax(-1)).float().mean().item()
    # The agreement check above ran both sides once: it was the warm-up.
    t_ours = best_time(ours, args.repeats, warmup=0)
    t_ours_noprefix = best_time(lambda: ours(False), args.repeats, warmup=0)
    t_hf = best_time(lambda: hf_scores(hf, ids, choices, args.batch), args.repeats, warmup=0)
    rows = [
        ["lmforge (shared prompt + shared examples prefix)", n / t_ours, t_ours],
        ["lmforge (shared prompt per example only)", n / t_ours_noprefix, t_ours_noprefix],
        ["transformers (forward per label, batched)", n / t_hf, t_hf],
    ]
    print(
        f"{task.name}: {n} examples, k={K}, {len(task.labels)} labels ({len(choices)} label "
        f"words), mean prompt {sum(map(len, ids)) / n:.0f} tokens, label tokens "
        f"{[len(c) for c in choices]}; max |score difference| {diff:.2e}, same argmax {agree:.0%}"
    )
    print_table(["scorer", "examples/s", "seconds"], rows)
    print(f"ratio (lmforge / transformers): {t_hf / t_ours:.2f}x "
          f"(without the shared examples prefix: {t_hf / t_ours_noprefix:.2f}x)")  # fmt: skip
    if args.quick:
        return
    path = write_result(
        "fewshot_scoring",
        {
            "task": task.name,
            "examples": n,
            "k": K,
            "labels": len(task.labels),
            "label_words": len(choices),
            "label_tokens": [len(c) for c in choices],
            "mean_prompt_tokens": sum(map(len, ids)) / n,
            "model": {**MODEL, "vocab_size": tok.vocab_size, "arch": "llama", "dtype": "fp32"},
            "batch": args.batch,
            "threads": args.threads,
            "repeats": args.repeats,
            "max_abs_score_difference": diff,
            "same_argmax": agree,
            "examples_per_s": {
                "lmforge": n / t_ours,
                "lmforge_no_prefix_sharing": n / t_ours_noprefix,
                "transformers_per_label": n / t_hf,
            },
            "ratio": t_hf / t_ours,
            "ratio_no_prefix_sharing": t_hf / t_ours_noprefix,
            "note": "2-core machine shared with other jobs while measured; rerun quietly",
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
