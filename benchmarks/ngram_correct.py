"""Typo-correction latency: lmforge's deletion index against Norvig's edit generation.

    python benchmarks/ngram_correct.py [--quick]     # writes results/ngram_correct.json

Candidate generation is what makes a corrector slow or fast. The peer is Peter
Norvig's spelling corrector ("How to Write a Spelling Corrector", the reference
implementation of the context-free baseline): it generates every string within
two edits of the typed word (about 50 n + 25 strings for one edit of an n-letter
word, squared for two) and keeps those in the vocabulary. lmforge looks the
typed word's deletions up in a SymSpell-style index and verifies the hits with a
vectorised DP. Both run on the same typed words -- seeded synthetic typos on the
Tiny Shakespeare and War and Peace test lines (the `correct-eval` split) -- and
must find the same vocabulary words (Norvig's edits2 also reaches a few words at
OSA distance 3, e.g. a transposition plus an insertion between the letters, which
are not counted as disagreements); Norvig's generator gets PEER_SECONDS per
corpus (over War and Peace's alphabet of Cyrillic, Latin and accented letters it
takes seconds a word). Then the whole corrector per word: candidate generation,
error model and the beam step in context, cold (nothing cached) and as `correct`
runs (typed words cached). Times are wall clock; the CPU time of the same calls
is recorded too, since on a shared machine the wall p99 is mostly the process
waiting for a core.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _bench import SHARED_DATA, print_table, write_result

from lmforge.common import set_quiet
from lmforge.ngram.correct_eval import split_corpus, train_model
from lmforge.ngram.typo_noise import NoiseConfig, corrupt_sentences
from lmforge.ngram.typos import CorrectConfig, Corrector, is_word

CORPORA = ("tinyshakespeare.txt", "war_and_peace_ru.txt")
PEER_SECONDS = 60.0  # Norvig's generator runs on as many of the words as fit in this


def norvig_candidates(word: str, letters: str, vocab: set[str]) -> set[str]:
    """Norvig's edits1 / edits2, intersected with the vocabulary (distance <= 2)."""

    def edits1(w: str) -> set[str]:
        splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
        deletes = [a + b[1:] for a, b in splits if b]
        transposes = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
        replaces = [a + c + b[1:] for a, b in splits if b for c in letters]
        inserts = [a + c + b for a, b in splits for c in letters]
        return set(deletes + transposes + replaces + inserts)

    one = edits1(word)
    two = {e2 for e1 in one for e2 in edits1(e1)}
    return (one | two | {word}) & vocab


def osa(a: str, b: str) -> int:
    """Optimal string alignment distance (the textbook DP), to judge disagreements."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def percentiles(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "median_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "mean_ms": statistics.fmean(ms),
    }


def bench_corpus(name: str, n_words: int) -> dict:
    train, held = split_corpus(SHARED_DATA / "corpora" / name)
    model = train_model(train)
    corrector = Corrector(model, CorrectConfig())
    noisy = corrupt_sentences(held, NoiseConfig(seed=0))
    typos = [t for toks, mask in noisy for t, m in zip(toks, mask) if m]
    typos = list(dict.fromkeys(typos))[:n_words]  # distinct: nothing cached helps
    words = [model.vocab.words[i] for i in corrector.word_ids]
    vocab = set(words)
    letters = "".join(sorted({c for w in words for c in w if c.isalpha()}))

    ours, ours_cpu, peer, disagree = [], [], [], 0
    peer_budget = time.perf_counter() + PEER_SECONDS
    for w in typos:
        t0, c0 = time.perf_counter(), time.process_time()
        idx, _, _ = corrector.index.lookup(w, 2)
        ours.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
        if time.perf_counter() > peer_budget:
            continue  # Norvig's edits2 over a large alphabet takes seconds per word
        t0 = time.perf_counter()
        theirs = norvig_candidates(w, letters, vocab)
        peer.append(time.perf_counter() - t0)
        mine = {corrector.index.words[i] for i in idx}
        # Norvig's two edits also reach some words at OSA distance 3; a word lmforge finds
        # that Norvig does not, or one within OSA 2 that lmforge misses, is a disagreement.
        missed = {x for x in theirs - mine if osa(x, w) <= 2}
        disagree += bool(mine - theirs or missed)

    # The whole corrector per word, cold (cache emptied before each sentence) and warm.
    sents = [toks for toks, _ in noisy][: max(1, n_words // 8)]
    cold: list[float] = []
    cold_cpu: list[float] = []
    for toks in sents:
        corrector._cache.clear()
        corrector.correct_tokens(toks, times=cold, cpu_times=cold_cpu)
    warm: list[float] = []
    warm_cpu: list[float] = []
    corrector._cache.clear()
    for toks in sents:
        corrector.correct_tokens(toks, times=warm, cpu_times=warm_cpu)
    n_tokens = sum(1 for s in sents for t in s if is_word(t))
    return {
        "corpus": name,
        "vocabulary": len(model.vocab),
        "typed_words": len(typos),
        "alphabet": len(letters),
        "lmforge_candidates": percentiles(ours),
        "lmforge_candidates_cpu": percentiles(ours_cpu),
        "norvig_words": len(peer),
        "norvig_candidates": percentiles(peer),
        "candidate_sets_disagree": disagree,
        "corrector_cold": percentiles(cold),
        "corrector_cold_cpu": percentiles(cold_cpu),
        "corrector_warm": percentiles(warm),
        "corrector_warm_cpu": percentiles(warm_cpu),
        "corrector_sentences": len(sents),
        "corrector_words": n_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 words per corpus")
    args = parser.parse_args()
    set_quiet(True)
    n = 100 if args.quick else 1000
    results = [bench_corpus(name, n) for name in CORPORA]
    rows = []
    for r in results:
        ours, peer = r["lmforge_candidates"], r["norvig_candidates"]
        cold, warm = r["corrector_cold"], r["corrector_warm"]
        rows.append(
            [
                r["corpus"],
                f"{ours['median_ms']:.3f} / {ours['p99_ms']:.2f} "
                f"(CPU {r['lmforge_candidates_cpu']['p99_ms']:.2f})",
                f"{peer['median_ms']:.1f} / {peer['p99_ms']:.0f} ({r['norvig_words']} words)",
                f"{peer['median_ms'] / ours['median_ms']:.0f}x",
                f"{cold['median_ms']:.3f} / {cold['p99_ms']:.2f} "
                f"(CPU {r['corrector_cold_cpu']['p99_ms']:.2f})",
                f"{warm['median_ms']:.3f} / {warm['p99_ms']:.2f} "
                f"(CPU {r['corrector_warm_cpu']['p99_ms']:.2f})",
                r["candidate_sets_disagree"],
            ]
        )
    print_table(
        [
            "corpus",
            "lmforge candidates ms: median / p99",
            "Norvig edits2 ms",
            "median ratio",
            "corrector cold ms",
            "corrector warm ms",
            "disagreements",
        ],
        rows,
    )
    write_result("ngram_correct", {"quick": args.quick, "results": results})


if __name__ == "__main__":
    main()
