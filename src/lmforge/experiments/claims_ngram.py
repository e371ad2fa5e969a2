"""C1: longer n-gram contexts give sparser counts and perplexity gains that saturate; the
product of many probabilities underflows while the sum of their logs does not.

Measured on the built-in world's pretraining text (its train split to count, its val split
to test) and, when `../shared/data/corpora/tinyshakespeare.txt` exists, on Tiny Shakespeare
too (first 90% of the lines to count, the rest to test). For every order n = 1..6:

* the distinct n-grams of the training text and the share of them seen only once;
* the share of the test text's n-grams (windows inside one padded sentence, as counting
  takes them) never seen in training: the sparsity a longer context buys;
* the test perplexity of interpolated modified Kneser-Ney (lmforge's best smoothing) of
  that order, and its relative gain over order n-1;
* the test text's per-token probabilities under that model multiplied in order, in float64
  and float32: the first token at which the running product is exactly 0.0, and the
  (finite) log10 sum at that token.

The verdict (`verdict`) holds each of the three parts against the numbers: unseen share
rising at every order, the last order's relative perplexity gain under 10% and under a
quarter of the first one (or negative), and the float64 product reaching 0.0 while the log
sum stays finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ngram.config import NgramConfig
from ..ngram.counts import NgramCounts, count_ngrams
from ..ngram.scoring import score_corpus
from ..ngram.text import (
    Corpus,
    encode_sentences,
    input_files,
    iter_sentences,
    make_tokenizer,
    read_training_corpus,
)
from ..ngram.train import train_from_corpus
from .claims import NOT_REPRODUCED, PARTLY, REPRODUCED, ClaimContext, ClaimResult, Verdict
from .claims_inputs import find_shakespeare, own_world
from .claims_plot import line_plot

ORDERS = tuple(range(1, 7))  # lmforge.ngram's orders
SATURATED = 0.10  # the last order's relative perplexity gain below this counts as saturated
SHRUNK = 0.25  # ... and below this share of the first order's gain
# --quick: a world of 60k characters with few of everything else (about 4 s instead of 10).


@dataclass
class CorpusNumbers:
    """What one corpus measured, one entry per order in `orders`."""

    name: str
    orders: list[int]
    distinct: list[int]  # distinct training n-grams
    singletons: list[float]  # share of them seen once
    unseen: list[float]  # share of test n-grams never seen in training
    perplexity: list[float]  # test perplexity, MKN of that order
    underflow64: list[int | None]  # first token where the float64 product is 0.0 (None: never)
    underflow32: list[int | None]  # same, float32
    logsum_at_underflow: list[float | None]  # log10 sum of the probabilities at underflow64
    test_tokens: int  # predicted test tokens (the longest product tried)


def relative_gains(perplexity: list[float]) -> list[float]:
    """1 - ppl(n) / ppl(n-1) for n = 2.. : the share of perplexity one more order removes."""
    return [1.0 - b / a for a, b in zip(perplexity, perplexity[1:])]


def first_zero(probs: np.ndarray) -> int | None:
    """1-based index of the first token at which the running product of `probs` (in their
    own dtype, as a naive implementation multiplies) is exactly 0.0; None if it never is."""
    zero = np.flatnonzero(np.cumprod(probs) == 0.0)
    return int(zero[0]) + 1 if len(zero) else None


def seen_windows(counts: NgramCounts, corpus: Corpus, n: int) -> np.ndarray:
    """Whether each order-n window of `corpus` (inside one padded sentence) is an n-gram of
    `counts`: its words walked down the count trie with one searchsorted per order."""
    v = counts.vocab_size
    pos = np.flatnonzero(corpus.remaining() >= n - 1)
    first = corpus.stream[pos].astype(np.int64)
    idx = np.where(counts.counts[0][first] > 0, first, -1)  # an order-1 index is the word id
    for m in range(2, n + 1):
        keys = counts.keys[m - 1]
        if len(keys) == 0:
            return np.zeros(len(pos), dtype=bool)
        query = idx * v + corpus.stream[pos + m - 1]
        at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        idx = np.where((idx >= 0) & (keys[at] == query), at, -1)
    return idx >= 0


def measure(name: str, train: Path, test: Path) -> CorpusNumbers:
    """Count, smooth and score every order on one train/test pair of text files."""
    tokenize = make_tokenizer("default")
    corpus, vocab, _ = read_training_corpus(input_files([train]), tokenize)
    test_corpus = encode_sentences(iter_sentences(input_files([test]), tokenize), vocab)
    counts = count_ngrams(corpus, max(ORDERS), len(vocab))
    out = CorpusNumbers(name, list(ORDERS), [], [], [], [], [], [], [], 0)
    for n in ORDERS:
        out.distinct.append(len(counts.keys[n - 1]))
        c = counts.counts[n - 1]
        out.singletons.append(float(np.mean(c[c > 0] == 1)))
        out.unseen.append(float(1.0 - seen_windows(counts, test_corpus, n).mean()))
        model = train_from_corpus(corpus, vocab, NgramConfig(order=n, smoothing="mkn"))
        scores = score_corpus(model, test_corpus)
        out.perplexity.append(scores.perplexity)
        probs = 10.0**scores.logp  # (tokens,) float64
        at64 = first_zero(probs)
        out.underflow64.append(at64)
        out.underflow32.append(first_zero(probs.astype(np.float32)))
        out.logsum_at_underflow.append(None if at64 is None else float(scores.logp[:at64].sum()))
        out.test_tokens = scores.n_tokens
    return out


def parts(c: CorpusNumbers) -> dict[str, bool]:
    """Which parts of the claim hold on one corpus."""
    gains = relative_gains(c.perplexity)
    last_logsum = c.logsum_at_underflow[-1]
    return {
        "sparser": all(b > a for a, b in zip(c.unseen, c.unseen[1:])),
        "saturates": bool(gains) and (gains[-1] < 0 or (
            gains[-1] < SATURATED and gains[-1] < SHRUNK * gains[0])),
        "underflow": c.underflow64[-1] is not None and last_logsum is not None
        and math.isfinite(last_logsum),
    }  # fmt: skip


def _said(c: CorpusNumbers) -> str:
    g = relative_gains(c.perplexity)
    at = c.underflow64[-1]
    flow = (
        f"the float64 product of the {c.orders[-1]}-gram's probabilities is 0.0 at token {at} "
        f"where the log10 sum is a finite {c.logsum_at_underflow[-1]:.1f}"
        if at is not None
        else f"the float64 product never reached 0.0 within {c.test_tokens} test tokens"
    )
    return (
        f"on {c.name} unseen test n-grams go {', '.join(f'{u:.0%}' for u in c.unseen)} for "
        f"n={c.orders[0]}..{c.orders[-1]}, perplexity {c.perplexity[0]:.1f} -> "
        f"{c.perplexity[-1]:.2f} with relative gains {', '.join(f'{x:.0%}' for x in g)}, and "
        f"{flow}"
    )


def verdict(corpora: list[CorpusNumbers]) -> Verdict:
    """Each part must hold on every corpus; all three -> reproduced, some -> partly."""
    held = [parts(c) for c in corpora]
    ok = {k: all(h[k] for h in held) for k in ("sparser", "saturates", "underflow")}
    said = "; ".join(_said(c) for c in corpora)
    if all(ok.values()):
        return Verdict(REPRODUCED, said)
    failed = {
        "sparser": "the unseen share does not rise at every order",
        "saturates": f"the last order still removes >= {SATURATED:.0%} of the perplexity "
        "(or a large share of the first gain): more text than orders here",
        "underflow": "the test text is too short for its product to reach 0.0",
    }
    why = "; ".join(failed[k] for k, v in ok.items() if not v)
    return Verdict(PARTLY if any(ok.values()) else NOT_REPRODUCED, f"{said} — but {why}")


def split_lines(path: Path, out: Path, fraction: float = 0.9) -> tuple[Path, Path]:
    """The first `fraction` of the non-blank lines to train.txt, the rest to test.txt."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    cut = int(len(lines) * fraction)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    (out / "test.txt").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    return out / "train.txt", out / "test.txt"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(corpora: list[CorpusNumbers]) -> tuple[list[str], list[list]]:
    columns = ["corpus", "n", "distinct n-grams (train)", "seen once", "test n-grams unseen",
               "test perplexity (MKN)", "gain vs n-1", "float64 product = 0.0 at token",
               "float32 product = 0.0 at token", "log10 sum there (float64)"]  # fmt: skip
    rows = []
    for c in corpora:
        gains = [None, *relative_gains(c.perplexity)]
        for i, n in enumerate(c.orders):
            lsum = c.logsum_at_underflow[i]
            rows.append([
                c.name, n, f"{c.distinct[i]:,}", _pct(c.singletons[i]), _pct(c.unseen[i]),
                f"{c.perplexity[i]:.2f}", "" if gains[i] is None else _pct(gains[i]),
                c.underflow64[i] or f"never ({c.test_tokens})",
                c.underflow32[i] or f"never ({c.test_tokens})",
                "" if lsum is None else f"{lsum:.1f}",
            ])  # fmt: skip
    return columns, rows


def plots(out: Path, corpora: list[CorpusNumbers]) -> list[str]:
    ppl = {c.name: (c.orders, c.perplexity) for c in corpora}
    unseen = {f"{c.name}: test n-grams unseen": (c.orders, [100 * u for u in c.unseen])
              for c in corpora}  # fmt: skip
    unseen |= {f"{c.name}: train n-grams seen once": (c.orders, [100 * s for s in c.singletons])
               for c in corpora}  # fmt: skip
    flow = {f"{c.name} {dt}": (c.orders, [v or c.test_tokens for v in vals])
            for c in corpora
            for dt, vals in (("float64", c.underflow64), ("float32", c.underflow32))}  # fmt: skip
    return [
        line_plot(out / "perplexity.png", ppl, title="Test perplexity (modified Kneser-Ney) by "
                  "order", xlabel="n-gram order", ylabel="perplexity", logy=True),
        line_plot(out / "sparsity.png", unseen, title="Sparsity by order", xlabel="n-gram order",
                  ylabel="% of n-grams"),
        line_plot(out / "underflow.png", flow, title="Tokens until the product of probabilities "
                  "is 0.0", xlabel="n-gram order", ylabel="tokens", logy=True),
    ]  # fmt: skip


def run(ctx: ClaimContext) -> ClaimResult:
    pre = own_world(ctx) / "pretrain"
    corpora = [measure("world", pre / "train.txt", pre / "val.txt")]
    notes = [
        "World: `lmforge world --size small` pretraining text; n-grams counted on train.txt, "
        "tested on val.txt; words by the n-gram default tokenizer (lowercase, \\w+|[^\\w\\s]), "
        "each line one sentence padded with <s> and </s>.",
        "Unseen share: test windows of n tokens inside one padded sentence whose n-gram was "
        "never counted in training (n=1: out-of-vocabulary tokens).",
        "Underflow: the test text's per-token probabilities under the order-n model, "
        "multiplied in order (np.cumprod) in float64 and float32; the log10 sum at the same "
        "token is finite. float64's smallest positive (subnormal) value is 10^-323.3, float32's "
        "10^-44.9.",
    ]
    shakespeare = find_shakespeare()
    if shakespeare is not None and not ctx.quick:
        train, test = split_lines(shakespeare, ctx.out / "shakespeare")
        corpora.append(measure("tinyshakespeare", train, test))
        notes.append(f"Tiny Shakespeare ({shakespeare}): first 90% of its lines counted, "
                     "last 10% tested.")  # fmt: skip
    columns, rows = table(corpora)
    numbers = {c.name: {**c.__dict__, "relative_gains": relative_gains(c.perplexity),
                        "parts": parts(c)} for c in corpora}  # fmt: skip
    return ClaimResult(verdict(corpora), columns, rows, plots(ctx.out, corpora), numbers, notes)
