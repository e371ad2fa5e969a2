"""C2: BPE splits numbers arbitrarily and splitting digits fixes arithmetic; Unigram
segments unspaced text.

Three measurements on the built-in world (`lmforge world --size small`):

(a) Numbers. A byte-level BPE tokenizer (`lmforge tokenizer train --kind bpe`) learns its
    merges on the world's text plus addition problems; its twin adds `--split-digits`.
    Every number 0..9999 is split after a space (" 427") and after '=' ("=427"): how many
    distinct splits numbers of one length get, the share not split the majority way for
    their length, and the share split differently in the two contexts
    (`claims_tokenizers_measure.number_splits`).
(b) Arithmetic. A tiny GPT per tokenizer is pretrained on the same 'a+b=c' problems for the
    same number of steps, and scored by exact match of its greedy answers on held-out problems,
    with 95% Wilson intervals (`claims_tokenizers_arith`).
(c) Unspaced text. The world's text with all whitespace removed trains a Unigram
    (sentencepiece) and a BPE tokenizer of the same vocabulary; on the unspaced val text,
    their token starts are scored against the true word starts (known from the spaced
    text): precision, recall, F1 -- over all boundaries and over those between two letters,
    which no pre-tokenizer rule gives away.

`verdict` holds each part against the numbers: (a) BPE's numbers split inconsistently
(>= 10% off the majority split, or >= 10% context-dependent) while the digit tokenizer's
never are; (b) the digit model's Wilson interval lies above the BPE model's; (c) Unigram's
between-letter boundary F1 beats BPE's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..eval.tasks_stats import Accuracy
from ..tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_inputs import own_world
from .claims_plot import bar_plot, line_plot
from .claims_tokenizers_arith import (
    ArithSettings,
    exact_match,
    train_model,
    train_tokenizers,
    write_problems,
)
from .claims_tokenizers_measure import (
    CONTEXTS,
    BoundaryScore,
    boundary_scores,
    number_splits,
    show_split,
    unspace,
)

INCONSISTENT = 0.10  # share of numbers split off-majority or context-dependently

FULL = dict(numbers=10_000, unspaced_chars=400_000, unspaced_vocabs=(512, 1024, 2048, 4096),
            arith=ArithSettings(max_operand=99, test=1000, vocab=1024, train_s=160.0,
                                max_steps=1500, d_model=64))  # fmt: skip
QUICK = dict(numbers=1000, unspaced_chars=30_000, unspaced_vocabs=(400, 512),
             arith=ArithSettings(max_operand=29, test=40, vocab=400, train_s=20.0,
                                 max_steps=20, d_model=64))  # fmt: skip
EXAMPLE = "Tom was born in 2018 and is 47. 1234+5678=6912"


@dataclass
class SplitNumbers:
    """(a) for one tokenizer: share off the majority split per context, context-dependent."""

    off_majority: dict[str, float]
    context_differs: float

    @property
    def worst(self) -> float:
        return max([*self.off_majority.values(), self.context_differs])


def verdict(bpe: SplitNumbers, digits: SplitNumbers, bpe_acc: Accuracy, digit_acc: Accuracy,
            bpe_f1: list[float], unigram_f1: list[float]) -> Verdict:  # fmt: skip
    """(a) arbitrary BPE splits, (b) digits beat BPE at addition, (c) Unigram finds words
    (its between-letter boundary F1 beats BPE's at most of the vocabulary sizes tried)."""
    a = bpe.worst >= INCONSISTENT and digits.worst == 0.0
    b = digit_acc.interval[0] > bpe_acc.interval[1]
    wins = sum(u > b_ for u, b_ in zip(unigram_f1, bpe_f1))
    c = 2 * wins > len(bpe_f1)
    ctx = next(iter(bpe.off_majority))
    said = [
        f"(a) {bpe.off_majority[ctx]:.0%} of BPE's numbers ({ctx}) are not split the "
        f"majority way for their length and {bpe.context_differs:.0%} split differently "
        f"after a space than after '=' (split digits: {digits.worst:.0%})",
        f"(b) exact match on held-out sums {100 * digit_acc.accuracy:.1f}% with split digits "
        f"vs {100 * bpe_acc.accuracy:.1f}% with BPE",
        "(c) between-letter word-boundary F1 on unspaced text, Unigram vs BPE: "
        + ", ".join(f"{u:.2f} vs {b_:.2f}" for u, b_ in zip(unigram_f1, bpe_f1))
        + f" over {len(bpe_f1)} vocabulary sizes (Unigram ahead at {wins})",
    ]
    held = {"a": a, "b": b, "c": c}
    why = {
        "a": "BPE's number splits were consistent here" if digits.worst == 0.0
        else "the digit tokenizer did not split every number into digits",
        "b": _arith_why(bpe_acc, digit_acc),
        "c": "Unigram's token boundaries matched the words no better than BPE's at most sizes "
        "(on this templated text both learn multi-word pieces)",
    }  # fmt: skip
    reason = "; ".join(said)
    if all(held.values()):
        return Verdict(REPRODUCED, reason)
    failed = "; ".join(f"({k}) {why[k]}" for k, v in held.items() if not v)
    status = PARTLY if any(held.values()) else NOT_REPRODUCED
    return Verdict(status, f"{reason} — but {failed}")


def _arith_why(bpe_acc: Accuracy, digit_acc: Accuracy) -> str:
    best = max(bpe_acc.accuracy, digit_acc.accuracy)
    if best < 0.05:
        return (
            "neither model learnt addition in its budget: the models are too small or too "
            "briefly trained"
        )
    if digit_acc.accuracy > bpe_acc.accuracy:
        return "the digit model's lead is inside the 95% intervals"
    if best < 0.5:
        return (
            f"BPE was ahead, but neither model learnt addition (best {best:.0%} exact match): "
            "the models are too small or too briefly trained for the digit advantage to show"
        )
    return "the BPE model added as well as or better than the digit model"


def unspaced_files(world: Path, out: Path, chars: int) -> tuple[Path, list[str]]:
    """The first `chars` characters of the world's train text with whitespace removed (one
    line per line), and the val text's lines (spaced: they give the true boundaries)."""
    text = (world / "pretrain" / "train.txt").read_text(encoding="utf-8")[:chars]
    lines = [unspace(ln)[0] for ln in text.splitlines()]
    path = out / "unspaced_train.txt"
    path.write_text("\n".join(ln for ln in lines if ln) + "\n", encoding="utf-8")
    val = (world / "pretrain" / "val.txt").read_text(encoding="utf-8").splitlines()
    return path, [ln for ln in val if ln.strip()]


def segmenter_scores(train: Path, val_lines: list[str], vocabs, threads: int):
    """{vocab: {kind: (all, between letters)}} for BPE and Unigram trained in-process (the
    library call `lmforge tokenizer train` makes; eight verb start-ups would cost more than
    the training)."""
    out = {}
    for vocab in vocabs:
        out[vocab] = {}
        for kind in ("bpe", "unigram"):
            cfg = TokenizerConfig(kind=kind, vocab_size=vocab, threads=threads)
            out[vocab][kind] = boundary_scores(train_tokenizer(cfg, [train]), val_lines)
    return out


def run(ctx: ClaimContext) -> ClaimResult:
    cfg = QUICK if ctx.quick else FULL
    s: ArithSettings = cfg["arith"]
    if ctx.threads:
        import torch

        torch.set_num_threads(ctx.threads)
    world = own_world(ctx)
    problems, test = write_problems(ctx.out, s, ctx.seed)
    toks = train_tokenizers(ctx, [world / "pretrain" / "train.txt", problems], s.vocab)
    loaded = {name: Tokenizer.load(folder) for name, folder in toks.items()}
    # (a) how numbers are split
    splits = {name: number_splits(t, cfg["numbers"]) for name, t in loaded.items()}
    summary = {name: SplitNumbers({c: sp.off_majority(c) for c in CONTEXTS}, sp.context_differs)
               for name, sp in splits.items()}  # fmt: skip
    # (b) addition with each tokenizer
    acc, shown, steps = {}, {}, {}
    for name, folder in toks.items():
        tag = name.replace("+", "_")
        run_dir = train_model(ctx, folder, problems, s, tag)
        acc[name], shown[name], steps[name] = exact_match(run_dir, test)
    # (c) unspaced text
    train_text, val_lines = unspaced_files(world, ctx.out, cfg["unspaced_chars"])
    sweep = segmenter_scores(train_text, val_lines, cfg["unspaced_vocabs"], ctx.threads or 0)
    f1 = {k: [sweep[v][k][1].f1 for v in sweep] for k in ("bpe", "unigram")}
    v = verdict(summary["bpe"], summary["bpe+digits"], acc["bpe"], acc["bpe+digits"],
                f1["bpe"], f1["unigram"])  # fmt: skip
    columns, rows = table(splits, summary, acc, steps, loaded, test, sweep, s)
    numbers = {
        "numbers_split": {n: {"off_majority": x.off_majority, "context_differs":
                              x.context_differs} for n, x in summary.items()},
        "distinct_splits": {n: {c: {d: sp.distinct(c, d) for d in sp.patterns[c]}
                                for c in CONTEXTS} for n, sp in splits.items()},
        "exact_match": {n: a.to_dict() for n, a in acc.items()},
        "train_steps": steps,
        "answers": shown,
        "boundaries": {vocab: {k: {"all": b[0].__dict__, "between_letters": b[1].__dict__,
                                   "f1_all": b[0].f1, "f1_between_letters": b[1].f1}
                               for k, b in by_kind.items()} for vocab, by_kind in sweep.items()},
        "settings": {k: (v.__dict__ if k == "arith" else v) for k, v in cfg.items()},
    }  # fmt: skip
    notes = [
        f"(a) Both number tokenizers: byte-level BPE, vocab {s.vocab}, trained on the world's "
        f"train text plus the addition training problems. Split of {EXAMPLE!r}: BPE "
        f"{show_split(loaded['bpe'], EXAMPLE)!r}; split digits "
        f"{show_split(loaded['bpe+digits'], EXAMPLE)!r}.",
        f"(b) Problems a+b=c with a, b in 0..{s.max_operand}: {s.test} held out, the rest "
        f"trained on; GPT (2 layers, d_model {s.d_model}) pretrained {s.max_steps} steps each "
        f"(capped at {s.train_s:.0f} s; seq 64, batch 32, lr 3e-3), greedy answer after 'EOS a+b=' up to EOS, exact match, "
        "95% Wilson intervals.",
        f"(c) Unigram (sentencepiece) and BPE of each vocab size "
        f"{', '.join(map(str, cfg['unspaced_vocabs']))}, trained on the "
        f"first {cfg['unspaced_chars']:,} characters of the world's train text with whitespace "
        "removed; scored on the val text (words: \\w+ runs and single marks).",
    ]
    return ClaimResult(v, columns, rows, plots(ctx.out, splits, acc, sweep), numbers, notes)


def table(splits, summary, acc, steps, loaded, test, sweep, s) -> tuple[list[str], list[list]]:
    columns = ["part", "measure", "BPE", "BPE + split digits", "Unigram"]
    rows: list[list] = []
    first = next(iter(CONTEXTS))
    for d in sorted(splits["bpe"].patterns[first]):
        rows.append(["(a) numbers", f"{d}-digit numbers ({first}): distinct splits, "
                     "tokens per number",
                     *[f"{sp.distinct(first, d)}, {sp.tokens_per_number(first, d):.2f}"
                       for sp in splits.values()], ""])  # fmt: skip
    for c in CONTEXTS:
        rows.append(["(a) numbers", f"numbers not split the majority way for their length "
                     f"({c})", *[f"{100 * x.off_majority[c]:.1f}%" for x in summary.values()],
                     ""])  # fmt: skip
    rows.append(
        [
            "(a) numbers",
            "numbers split differently after a space and after '='",
            *[f"{100 * x.context_differs:.1f}%" for x in summary.values()],
            "",
        ]
    )
    per_problem = [sum(len(t.encode(p)) for p in test) / len(test) for t in loaded.values()]
    rows += [
        ["(b) addition", "tokens per problem", *[f"{x:.2f}" for x in per_problem], ""],
        ["(b) addition", f"training steps (budget {s.max_steps}, capped at {s.train_s:.0f} s)", *steps.values(), ""],
        ["(b) addition", f"exact match on {len(test)} held-out problems [95% CI]",
         *[a.cell() for a in acc.values()], ""],
    ]  # fmt: skip
    for vocab, bounds in sweep.items():
        for label, i in (("all boundaries", 0), ("between two letters", 1)):
            b: dict[str, BoundaryScore] = {k: v[i] for k, v in bounds.items()}
            rows.append(["(c) unspaced", f"vocab {vocab}: word-boundary precision / recall / "
                         f"F1 ({label})", _prf(b["bpe"]), "", _prf(b["unigram"])])  # fmt: skip
        rows.append(["(c) unspaced", f"vocab {vocab}: tokens per word",
                     f"{bounds['bpe'][0].tokens_per_word:.2f}", "",
                     f"{bounds['unigram'][0].tokens_per_word:.2f}"])  # fmt: skip
    return columns, rows


def _prf(b: BoundaryScore) -> str:
    return f"{b.precision:.2f} / {b.recall:.2f} / {b.f1:.2f}"


def plots(out: Path, splits, acc, sweep) -> list[str]:
    first = next(iter(CONTEXTS))
    lengths = sorted(splits["bpe"].patterns[first])
    distinct = {f"{name} ({c})": [sp.distinct(c, d) for d in lengths]
                for name, sp in splits.items() for c in CONTEXTS}  # fmt: skip
    names = list(acc)
    return [
        bar_plot(out / "number_splits.png", [f"{d} digits" for d in lengths], distinct,
                 title="Distinct ways numbers of one length are split", ylabel="distinct splits"),
        bar_plot(out / "addition.png", names, {"exact match": [acc[n].accuracy for n in names]},
                 title="Held-out addition, greedy exact match (95% Wilson)", ylabel="accuracy",
                 errors={"exact match": [acc[n].interval for n in names]}),
        line_plot(out / "unspaced.png", {f"{k} ({label})": (list(sweep), [sweep[v][k][i].f1
                  for v in sweep]) for k in ("bpe", "unigram")
                  for label, i in (("all", 0), ("between letters", 1))},
                  title="Word-boundary F1 on unspaced text", xlabel="vocabulary size",
                  ylabel="F1", logx=True),
    ]  # fmt: skip
