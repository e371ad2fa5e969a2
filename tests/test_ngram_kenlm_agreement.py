"""Modified Kneser-Ney agrees with KenLM's lmplz on the issue's War and Peace split.

Reference numbers (from the issue, measured with `lmplz -o N` and `query`): held-out
perplexity 295.6 at order 3 and 293.9 at order 5, counting </s> but not <s> and
OOVs as <unk>. lmforge must match within 0.5%.
"""

from __future__ import annotations

import re

import pytest

from lmforge.ngram.config import NgramConfig
from lmforge.ngram.scoring import score_sentences
from lmforge.ngram.train import train_ngram

KENLM_PERPLEXITY = {3: 295.6, 5: 293.9}


@pytest.fixture(scope="module")
def war_and_peace_split(shared_data, tmp_path_factory):
    """Lowercased, \\w+|[^\\w\\s] tokens, one non-empty line per sentence, first 90% train."""
    pat = re.compile(r"\w+|[^\w\s]")
    text = (shared_data / "corpora" / "war_and_peace_ru.txt").read_text(encoding="utf-8")
    lines = [" ".join(pat.findall(ln.lower())) for ln in text.split("\n") if ln.strip()]
    cut = int(0.9 * len(lines))
    train = tmp_path_factory.mktemp("wp") / "train.txt"
    train.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    return train, [ln.split() for ln in lines[cut:]]


@pytest.mark.parametrize("order", [3, 5])
def test_modified_kneser_ney_matches_kenlm_perplexity(war_and_peace_split, order):
    train, held_out = war_and_peace_split
    model = train_ngram(NgramConfig(order=order, smoothing="mkn", tokenizer="whitespace"), [train])
    scores = score_sentences(model, held_out)
    assert scores.n_tokens == 28_141  # 27,544 words + 597 </s>
    assert scores.perplexity == pytest.approx(KENLM_PERPLEXITY[order], rel=0.005)
