"""Tokenizers: lmforge against direct `tokenizers` and `sentencepiece` use, and fertility.

    python benchmarks/tokenizer_speed.py [--quick]             # speed: writes results/tokenizers.json
    python benchmarks/tokenizer_speed.py fertility [--quick]   # tables for docs/tokenizers.md

Speed (one thread on every side, vocab 4096, Tiny Shakespeare + War and Peace):
(a) byte-level BPE training: lmforge vs the same BpeTrainer used directly;
(b) BPE encoding of the corpus lines in one batch: lmforge vs the same tokenizer.json
    used directly; (c) unigram training: lmforge vs `sentencepiece` (same options)
    vs the `tokenizers` UnigramTrainer (slow: one run).

Fertility: every kind at vocab 4k and 16k, trained on the first 90% of each corpus
and measured on the last 10%; then word forms (none / stem / lemma) for the word kind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# One thread everywhere, set before `tokenizers` starts its thread pool.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_THREADS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from _bench import SHARED_DATA, median_time, print_table, write_result  # noqa: E402

from lmforge.common import set_quiet  # noqa: E402
from lmforge.tokenizers import SPECIAL_TOKENS, TokenizerConfig, train_tokenizer  # noqa: E402
from lmforge.tokenizers.base import UNK  # noqa: E402

CORPORA = {"en": "tinyshakespeare.txt", "ru": "war_and_peace_ru.txt"}
VOCAB = 4096
QUICK_CHARS = 200_000


def corpus_files(tmp: Path, quick: bool) -> list[Path]:
    """The two corpora (or, with --quick, their first 200k characters)."""
    files = [SHARED_DATA / "corpora" / name for name in CORPORA.values()]
    if not all(f.is_file() for f in files):
        sys.exit(f"reference corpora not found under {SHARED_DATA}/corpora")
    if not quick:
        return files
    out = []
    for f in files:
        q = tmp / f.name
        q.write_text(f.read_text(encoding="utf-8")[:QUICK_CHARS], encoding="utf-8")
        out.append(q)
    return out


# -- (a) BPE training ---------------------------------------------------------


def direct_bpe_train(files: list[Path]):
    """What a user of `tokenizers` writes for the same byte-level BPE."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=2,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train([str(f) for f in files], trainer)
    return tok


def lmforge_train(kind: str, files: list[Path], **kw):
    return train_tokenizer(TokenizerConfig(kind=kind, vocab_size=VOCAB, threads=1, **kw), files)


# -- (c) unigram training -----------------------------------------------------


def direct_sentencepiece_train(files: list[Path]) -> bytes:
    """sentencepiece reading the files itself, with the options lmforge passes it."""
    import sentencepiece as spm

    from lmforge.tokenizers.unigram import sentencepiece_options

    model = io.BytesIO()
    opts = sentencepiece_options(TokenizerConfig(kind="unigram", vocab_size=VOCAB, threads=1))
    spm.SentencePieceTrainer.train(
        input=",".join(str(f) for f in files), model_writer=model, **opts
    )
    return model.getvalue()


def direct_tokenizers_unigram_train(files: list[Path]):
    """The `tokenizers` library's own UnigramTrainer, Metaspace pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=SPECIAL_TOKENS, unk_token=UNK, show_progress=False
    )
    tok.train([str(f) for f in files], trainer)
    return tok


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function after one warm-up each, its runs interleaved with the
    others' (a b a b …) so that load from other processes hits every side alike."""
    for fn in fns.values():
        median_time(fn, repeats=1, warmup=0)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(median_time(fn, repeats=1, warmup=0))
    return {name: statistics.median(ts) for name, ts in times.items()}


def speed(quick: bool) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    repeats = 5
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = corpus_files(tmp, quick)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"input: {', '.join(f.name for f in files)} ({size_mb:.2f} MB), one thread, "
            f"vocab {VOCAB}, median of {repeats} interleaved runs after 1 warm-up"
        )

        t = interleaved_medians(
            {
                "lmforge": lambda: lmforge_train("bpe", files),
                "direct": lambda: direct_bpe_train(files),
            },
            repeats,
        )
        t_lm_bpe, t_hf_bpe = t["lmforge"], t["direct"]

        tok = lmforge_train("bpe", files)
        tok.save(tmp / "bpe")
        direct = HFTokenizer.from_file(str(tmp / "bpe" / "tokenizer.json"))
        lines = [ln for f in files for ln in f.read_text(encoding="utf-8").splitlines(True)]

        def direct_encode():
            return [e.ids for e in direct.encode_batch_fast(lines, add_special_tokens=False)]

        assert tok.encode_batch(lines) == direct_encode()
        t = interleaved_medians(
            {"lmforge": lambda: tok.encode_batch(lines), "direct": direct_encode}, repeats
        )
        t_lm_enc, t_hf_enc = t["lmforge"], t["direct"]

        t = interleaved_medians(
            {
                "lmforge": lambda: lmforge_train("unigram", files),
                "sentencepiece": lambda: direct_sentencepiece_train(files),
            },
            repeats,
        )
        t_lm_uni, t_spm = t["lmforge"], t["sentencepiece"]
        t0 = time.perf_counter()
        direct_tokenizers_unigram_train(files)
        t_hf_uni = time.perf_counter() - t0

    rows = [
        ["bpe train", "tokenizers BpeTrainer", t_lm_bpe, t_hf_bpe, t_lm_bpe / t_hf_bpe],
        ["bpe encode (batch)", "tokenizers encode_batch", t_lm_enc, t_hf_enc, t_lm_enc / t_hf_enc],
        ["unigram train", "sentencepiece", t_lm_uni, t_spm, t_lm_uni / t_spm],
        [
            "unigram train",
            "tokenizers UnigramTrainer (1 run)",
            t_lm_uni,
            t_hf_uni,
            t_lm_uni / t_hf_uni,
        ],
    ]
    print_table(["task", "peer", "lmforge s", "peer s", "lmforge / peer"], rows)
    print(
        f"ratio lmforge/peer: bpe train {t_lm_bpe / t_hf_bpe:.3f}, "
        f"bpe encode {t_lm_enc / t_hf_enc:.3f}, unigram vs sentencepiece {t_lm_uni / t_spm:.3f}"
    )
    path = write_result(
        "tokenizers",
        {
            "input_mb": size_mb,
            "quick": quick,
            "threads": 1,
            "vocab_size": VOCAB,
            "rows": [
                {"task": r[0], "peer": r[1], "lmforge_s": r[2], "peer_s": r[3], "ratio": r[4]}
                for r in rows
            ],
        },
    )
    print(f"wrote {path}")


# -- fertility ----------------------------------------------------------------


def split_corpus(path: Path, tmp: Path, quick: bool) -> tuple[Path, str]:
    """(training file with the first 90%, held-out text of the last 10%), cut at a line end."""
    text = path.read_text(encoding="utf-8")
    if quick:
        text = text[:QUICK_CHARS]
    cut = text.index("\n", int(len(text) * 0.9)) + 1
    train = tmp / f"train_{path.name}"
    train.write_text(text[:cut], encoding="utf-8")
    return train, text[cut:]


def measure(tok, text: str) -> dict:
    from lmforge.tokenizers.stats import text_stats

    s = text_stats(tok, text.splitlines(True), "held-out")
    return {
        "vocab": tok.vocab_size,
        "tokens_per_word": s.tokens_per_word,
        "tokens_per_char": s.tokens_per_char,
        "unk_share": s.unk_share,
    }


def fertility(quick: bool) -> None:
    sizes = (4096, 16384)
    results: dict = {"fertility": [], "word_forms": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        splits = {
            lang: split_corpus(SHARED_DATA / "corpora" / name, tmp, quick)
            for lang, name in CORPORA.items()
        }
        rows = []
        for lang, (train_file, held_out) in splits.items():
            for kind in ("word", "char", "bpe", "unigram"):
                for size in sizes:
                    cfg = TokenizerConfig(kind=kind, vocab_size=size)
                    t0 = time.perf_counter()
                    tok = train_tokenizer(cfg, [train_file])
                    seconds = time.perf_counter() - t0
                    m = measure(tok, held_out)
                    results["fertility"].append(
                        {
                            "language": lang,
                            "kind": kind,
                            "target_vocab": size,
                            "train_s": seconds,
                            **m,
                        }
                    )
                    rows.append(
                        [
                            lang,
                            kind,
                            size,
                            m["vocab"],
                            m["tokens_per_word"],
                            m["tokens_per_char"],
                            f"{m['unk_share']:.2%}",
                        ]
                    )
        print("fertility on the held-out 10% (tokens per word / per character):")
        print_table(
            ["lang", "kind", "target vocab", "vocab", "tokens/word", "tokens/char", "unk"], rows
        )

        rows = []
        for lang, (train_file, held_out) in splits.items():
            for base_form in ("none", "stem", "lemma"):
                distinct = None
                for size in sizes:
                    cfg = TokenizerConfig(
                        kind="word", vocab_size=size, base_form=base_form, language=lang
                    )
                    tok = train_tokenizer(cfg, [train_file])
                    if distinct is None:
                        distinct = distinct_base_forms(train_file, cfg)
                    m = measure(tok, held_out)
                    m["unk_if_reduced_at_encode"] = unk_if_reduced_at_encode(tok, cfg, held_out)
                    results["word_forms"].append(
                        {
                            "language": lang,
                            "base_form": base_form,
                            "target_vocab": size,
                            "distinct_types": distinct,
                            **m,
                        }
                    )
                    rows.append(
                        [
                            lang,
                            base_form,
                            distinct,
                            size,
                            m["vocab"],
                            f"{m['unk_share']:.2%}",
                            f"{m['unk_if_reduced_at_encode']:.2%}",
                        ]
                    )
        print("\nword tokenizer, word forms (types in training; <|unk|> on the held-out 10%):")
        print_table(
            [
                "lang",
                "base form",
                "types",
                "target vocab",
                "vocab",
                "unk",
                "unk if reduced at encode",
            ],
            rows,
        )
    path = write_result("tokenizers_fertility", {"quick": quick, **results})
    print(f"wrote {path}")


def distinct_base_forms(train_file: Path, cfg: TokenizerConfig) -> int:
    """How many ids full coverage of the training text would need (types after reduction)."""
    from lmforge.tokenizers.corpus import iter_documents
    from lmforge.tokenizers.stopwords import load_stop_words
    from lmforge.tokenizers.word import count_words, word_pipeline
    from lmforge.tokenizers.wordforms import base_form_reducer

    normalizer, pre = word_pipeline(cfg, load_stop_words(cfg.stop_words))
    counts = count_words(iter_documents([train_file]), normalizer, pre)
    reduce = base_form_reducer(cfg.base_form, cfg.language)
    words = sorted(counts)
    return len(set(reduce(words) if reduce else words))


def unk_if_reduced_at_encode(tok, cfg: TokenizerConfig, text: str) -> float:
    """The <|unk|> share if held-out words were stemmed/lemmatized when encoding too
    (which tokenizer.json cannot express): what the alias vocabulary gives up."""
    from lmforge.tokenizers.stopwords import load_stop_words
    from lmforge.tokenizers.word import count_words, word_pipeline
    from lmforge.tokenizers.wordforms import base_form_reducer

    normalizer, pre = word_pipeline(cfg, load_stop_words(cfg.stop_words))
    counts = count_words(text.splitlines(True), normalizer, pre)
    reduce = base_form_reducer(cfg.base_form, cfg.language)
    words = sorted(counts)
    bases = reduce(words) if reduce else words
    vocab = tok.engine.get_vocab()
    unk = sum(counts[w] for w, b in zip(words, bases) if w not in vocab and b not in vocab)
    return unk / max(1, sum(counts.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="speed", choices=("speed", "fertility"))
    parser.add_argument("--quick", action="store_true", help="first 200k characters only")
    args = parser.parse_args()
    set_quiet(True)
    if args.what == "speed":
        speed(args.quick)
    else:
        fertility(args.quick)


if __name__ == "__main__":
    main()
