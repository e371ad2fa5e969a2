"""The measured evaluation of T9 decoding and typo correction on held-out sentences.

Both follow the recipe of the n-gram tables (docs/ngram.md): a corpus is
lowercased and split into `\\w+|[^\\w\\s]` tokens, one non-empty line per sentence;
the first 90% of lines train an MKN model, the last 10% are the test set. The
`dev` split instead trains on the first 80% and evaluates on the next 10% (what
the corrector's defaults were tuned on), so the test lines stay unseen.

* T9: every word of a test sentence that the keypad can type becomes its key
  sequence; punctuation and words it cannot type (digits, the other script) are
  given as they are. Top-1 word accuracy of the beam search with the model
  (in context) against the most frequent word for each key sequence.
* Typos: seeded synthetic typos (`typo_noise`) on the test sentences; top-1 and
  top-3 accuracy on the corrupted words, the share of clean words changed (in
  the noisy sentences, and on the untouched test text), and the latency per
  word, for the context-free baseline and the noisy-channel corrector.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..common import LmforgeError, check_text_file, progress
from .config import NgramConfig
from .model import NgramModel
from .t9 import KEYPADS, T9Index, beam_decode, letter_keys, word_keys
from .text import WORD_PATTERN, encode_sentences
from .train import train_from_corpus
from .typo_noise import NoiseConfig, corrupt_sentences
from .typos import CorrectConfig, Corrector, is_word
from .vocab import UNK_ID, Vocab

SPLITS = ("test", "dev")


def split_corpus(path: str | Path, split: str = "test") -> tuple[list[list[str]], list[list[str]]]:
    """(training sentences, evaluation sentences) of a corpus, tokenized (see the module)."""
    if split not in SPLITS:
        raise LmforgeError(f"split: {split!r} is not one of {', '.join(SPLITS)}")
    p = check_text_file(path)
    text = p.read_text(encoding="utf-8")
    lines = [WORD_PATTERN.findall(ln.lower()) for ln in text.split("\n") if ln.strip()]
    lines = [t for t in lines if t]
    if len(lines) < 10:
        raise LmforgeError(f"{p}: {len(lines)} non-empty lines; the splits need at least 10")
    cut90 = int(0.9 * len(lines))
    if split == "test":
        return lines[:cut90], lines[cut90:]
    cut80 = int(0.8 * len(lines))
    return lines[:cut80], lines[cut80:cut90]


def train_model(sentences: list[list[str]], order: int = 3) -> NgramModel:
    """An MKN model of `order` on tokenized sentences (every word in the vocabulary)."""
    counts = Counter(w for s in sentences for w in s)
    vocab, _ = Vocab.from_counts(counts)
    model = train_from_corpus(
        encode_sentences(sentences, vocab), vocab, NgramConfig(order=order, smoothing="mkn")
    )
    model.meta["tokenizer"] = "default"
    return model


def pick_layout(sentences: list[list[str]]) -> str:
    """The keypad layout that types the most word tokens of `sentences`."""
    best, best_n = "en", -1
    for layout in KEYPADS:
        keys = letter_keys(layout)
        n = sum(1 for s in sentences for w in s if word_keys(w, keys) is not None)
        if n > best_n:
            best, best_n = layout, n
    return best


# ---------------------------------------------------------------------------
# T9


def evaluate_t9(
    path: str | Path,
    layout: str = "auto",
    order: int = 3,
    beam: int = 16,
    split: str = "test",
    max_sentences: int = 0,
) -> dict:
    """Top-1 word accuracy of T9 with and without context on one corpus (see the module)."""
    train, held = split_corpus(path, split)
    if max_sentences:
        held = held[:max_sentences]
    if layout == "auto":
        layout = pick_layout(held)
    model = train_model(train, order)
    index = T9Index(model, layout)
    keys = letter_keys(layout)
    vocab = model.vocab
    n = in_vocab = ambiguous = 0
    right_free = right_ctx = amb_free = amb_ctx = 0
    t0 = time.perf_counter()
    with progress(total=len(held), desc=f"t9 {Path(path).name}", unit="sent") as bar:
        for sent in held:
            lattice, slots = [], []
            for tok in sent:
                seq = word_keys(tok, keys)
                if seq is None:  # punctuation, digits, another script: typed otherwise
                    lattice.append(np.asarray([vocab.id(tok)], dtype=np.int64))
                    continue
                cands = index.words(seq)
                slots.append((len(lattice), tok, cands))
                lattice.append(cands if len(cands) else np.asarray([UNK_ID], dtype=np.int64))
            bar.update(1)
            if not slots:
                continue
            path_ids = beam_decode(model, lattice, width=beam, top=1)[0][0]
            for pos, tok, cands in slots:
                n += 1
                in_vocab += tok in vocab
                amb = len(cands) > 1
                ambiguous += amb
                free = len(cands) > 0 and vocab.words[cands[0]] == tok
                ctx = vocab.words[path_ids[pos]] == tok
                right_free += free
                right_ctx += ctx
                amb_free += free and amb
                amb_ctx += ctx and amb
    seconds = time.perf_counter() - t0
    return {
        "corpus": Path(path).name,
        "split": split,
        "layout": layout,
        "order": order,
        "beam": beam,
        "sentences": len(held),
        "words": n,
        "in_vocab": in_vocab / max(n, 1),
        "ambiguous": ambiguous / max(n, 1),
        "top1_without_context": right_free / max(n, 1),
        "top1_in_context": right_ctx / max(n, 1),
        "ambiguous_without_context": amb_free / max(ambiguous, 1),
        "ambiguous_in_context": amb_ctx / max(ambiguous, 1),
        "ms_per_word": 1000 * seconds / max(n, 1),
    }


def t9_table(results: list[dict]) -> list[str]:
    """Markdown rows of the T9 results."""
    lines = [
        "| corpus | layout | typed words | in vocabulary | ambiguous | top-1 without context "
        "| top-1 in context | ambiguous: without / in context | ms per word |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['corpus']} | {r['layout']} | {r['words']:,} | {r['in_vocab']:.1%} "
            f"| {r['ambiguous']:.1%} | {r['top1_without_context']:.1%} "
            f"| **{r['top1_in_context']:.1%}** | {r['ambiguous_without_context']:.1%} / "
            f"{r['ambiguous_in_context']:.1%} | {r['ms_per_word']:.2f} |"
        )
    return lines


# ---------------------------------------------------------------------------
# Typo correction


@dataclasses.dataclass
class _Tally:
    """Counts for one system on one corpus."""

    typos: int = 0
    top1: int = 0
    top3: int = 0
    clean_known: int = 0
    changed_known: int = 0
    clean_unknown: int = 0
    changed_unknown: int = 0
    text_words: int = 0
    text_changed: int = 0
    times: list[float] = dataclasses.field(default_factory=list)
    cpu_times: list[float] = dataclasses.field(default_factory=list)

    def add_typo(self, truth: str, ranked: list[str]) -> None:
        self.typos += 1
        self.top1 += ranked[:1] == [truth]
        self.top3 += truth in ranked[:3]

    def add_clean(self, truth: str, got: str, known: bool) -> None:
        if known:
            self.clean_known += 1
            self.changed_known += got != truth
        else:
            self.clean_unknown += 1
            self.changed_unknown += got != truth

    def summary(self) -> dict:
        t = np.asarray(self.times) * 1000
        c = np.asarray(self.cpu_times) * 1000
        clean = self.clean_known + self.clean_unknown
        return {
            "typos": self.typos,
            "top1": self.top1 / max(self.typos, 1),
            "top3": self.top3 / max(self.typos, 1),
            "clean_changed": (self.changed_known + self.changed_unknown) / max(clean, 1),
            "clean_known_changed": self.changed_known / max(self.clean_known, 1),
            "clean_unknown_changed": self.changed_unknown / max(self.clean_unknown, 1),
            "text_changed": self.text_changed / max(self.text_words, 1),
            "ms_median": float(np.median(t)) if len(t) else 0.0,
            "ms_p99": float(np.percentile(t, 99)) if len(t) else 0.0,
            "ms_cpu_median": float(np.median(c)) if len(c) else 0.0,
            "ms_cpu_p99": float(np.percentile(c, 99)) if len(c) else 0.0,
        }


def _ranked(fix) -> list[str]:
    return [w for w, _ in fix.alternatives] if fix.alternatives else [fix.word]


def evaluate_correction(
    path: str | Path,
    noise: NoiseConfig | None = None,
    configs: dict[str, CorrectConfig] | None = None,
    order: int = 3,
    split: str = "test",
    max_sentences: int = 0,
) -> dict:
    """Accuracy, clean-word changes and latency of the baseline and each corrector
    configuration in `configs` (name -> config) on one corpus (see the module)."""
    noise = noise or NoiseConfig()
    if configs is None:
        configs = {
            "noisy channel": CorrectConfig(),
            "noisy channel + keyboard": CorrectConfig(keyboard=True),
            "noisy channel + keyboard + lexicon": CorrectConfig(keyboard=True, lexicon=True),
        }
    train, held = split_corpus(path, split)
    if max_sentences:
        held = held[:max_sentences]
    model = train_model(train, order)
    vocab = model.vocab
    noisy = corrupt_sentences(held, noise)
    real_words = sum(1 for (toks, mask) in noisy for t, m in zip(toks, mask) if m and t in vocab)
    fixable = sum(
        1 for sent, (_, mask) in zip(held, noisy) for t, m in zip(sent, mask) if m and t in vocab
    )
    n_typos = sum(sum(mask) for _, mask in noisy)
    systems: dict[str, dict] = {}
    name = Path(path).name

    # The context-free baseline ranks each typed word on its own.
    base = _Tally()
    first = next(iter(configs.values()))
    corrector = Corrector(model, first)
    for sent, (toks, mask) in zip(held, noisy):
        for truth, typed, hit in zip(sent, toks, mask):
            if not is_word(typed):
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            ranked = corrector.baseline(typed, top=3)
            base.times.append(time.perf_counter() - t0)
            base.cpu_times.append(time.process_time() - c0)
            if hit:
                base.add_typo(truth, ranked)
            else:
                base.add_clean(truth, ranked[0], truth in vocab)
        for truth in sent:
            if is_word(truth):
                base.text_words += 1
                base.text_changed += corrector.baseline(truth)[0] != truth
    systems["context-free baseline"] = base.summary()

    builds = {}
    for label, cfg in configs.items():
        t0 = time.perf_counter()
        corrector = Corrector(model, cfg)
        builds[label] = time.perf_counter() - t0
        tally = _Tally()
        with progress(total=2 * len(held), desc=f"{label} {name}", unit="sent") as bar:
            for sent, (toks, mask) in zip(held, noisy):
                times: list[float] = []
                cpu: list[float] = []
                fixes = corrector.correct_tokens(toks, top=3, times=times, cpu_times=cpu)
                for truth, fix, hit, dt, dc in zip(sent, fixes, mask, times, cpu):
                    if not is_word(fix.typed):
                        continue
                    tally.times.append(dt)
                    tally.cpu_times.append(dc)
                    if hit:
                        tally.add_typo(truth, _ranked(fix))
                    else:
                        tally.add_clean(truth, fix.word, truth in vocab)
                bar.update(1)
            for sent in held:  # the untouched text: every change is a false alarm
                for truth, fix in zip(sent, corrector.correct_tokens(sent)):
                    if is_word(truth):
                        tally.text_words += 1
                        tally.text_changed += fix.word != truth
                bar.update(1)
        systems[label] = tally.summary()
    return {
        "corpus": name,
        "split": split,
        "order": order,
        "sentences": len(held),
        "vocabulary": len(vocab),
        "typos": n_typos,
        "typos_real_words": real_words / max(n_typos, 1),
        "typos_fixable": fixable / max(n_typos, 1),
        "noise": dataclasses.asdict(noise),
        "configs": {k: dataclasses.asdict(v) for k, v in configs.items()},
        "index_seconds": builds,
        "systems": systems,
    }


def correct_table(results: list[dict]) -> list[str]:
    """Markdown rows of the typo-correction results."""
    lines = [
        "| corpus | system | top-1 | top-3 | clean words changed (in vocab / not) "
        "| clean text changed | ms per word: median / p99 (CPU p99) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for label, s in r["systems"].items():
            lines.append(
                f"| {r['corpus']} | {label} | {s['top1']:.1%} | {s['top3']:.1%} "
                f"| {s['clean_changed']:.2%} ({s['clean_known_changed']:.2%} / "
                f"{s['clean_unknown_changed']:.1%}) | {s['text_changed']:.2%} "
                f"| {s['ms_median']:.3f} / {s['ms_p99']:.2f} ({s['ms_cpu_p99']:.2f}) |"
            )
    return lines


def correct_notes(results: list[dict]) -> list[str]:
    """One line per corpus: how many typos, how many became real words, the ceiling."""
    return [
        f"{r['corpus']}: {r['sentences']:,} {r['split']} sentences, {r['typos']:,} typos "
        f"({r['typos_real_words']:.1%} of them real words); {r['typos_fixable']:.1%} of the "
        f"typos hide a word the model knows (the ceiling); index built in "
        + ", ".join(f"{v:.2f} s ({k})" for k, v in r["index_seconds"].items())
        for r in results
    ]
