"""C2 (tokenizers): the verdict, the measurement helpers, and one --quick run end to end."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from claims_helpers import quick_context

from lmforge.eval.tasks_stats import Accuracy
from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_tokenizers import SplitNumbers, run, verdict
from lmforge.experiments.claims_tokenizers_measure import (
    NumberSplits,
    addition_problems,
    boundary_scores,
    digit_pattern,
    inside_letters,
    number_splits,
    split_problem,
    unspace,
)
from lmforge.tokenizers import TokenizerConfig, train_tokenizer

ARBITRARY = SplitNumbers({"after a space": 0.49, "after '='": 0.51}, 0.47)
CONSISTENT = SplitNumbers({"after a space": 0.0, "after '='": 0.0}, 0.0)


def test_verdict_reproduced_when_every_part_holds():
    v = verdict(ARBITRARY, CONSISTENT, Accuracy(20, 1000), Accuracy(600, 1000),
                [0.45, 0.50, 0.48], [0.50, 0.55, 0.44])  # fmt: skip
    assert v.status == REPRODUCED
    assert "60.0%" in v.reason and "2.0%" in v.reason and "ahead at 2" in v.reason


def test_verdict_partly_when_the_digit_lead_is_inside_the_intervals():
    v = verdict(ARBITRARY, CONSISTENT, Accuracy(10, 40), Accuracy(14, 40), [0.4], [0.5])
    assert v.status == PARTLY
    assert "inside the 95% intervals" in v.reason


def test_verdict_says_when_neither_model_learnt():
    v = verdict(ARBITRARY, CONSISTENT, Accuracy(0, 500), Accuracy(1, 500), [0.5], [0.4])
    assert v.status == PARTLY
    assert "neither model learnt" in v.reason


def test_verdict_not_reproduced_when_nothing_holds():
    v = verdict(CONSISTENT, CONSISTENT, Accuracy(500, 1000), Accuracy(400, 1000),
                [0.5, 0.5], [0.4, 0.6])  # fmt: skip
    assert v.status == NOT_REPRODUCED
    assert "consistent" in v.reason and "as well as or better" in v.reason


def test_verdict_says_when_bpe_leads_but_neither_model_learnt_addition():
    v = verdict(ARBITRARY, CONSISTENT, Accuracy(150, 1000), Accuracy(57, 1000), [0.5], [0.6])
    assert v.status == PARTLY
    assert "BPE was ahead" in v.reason and "best 15%" in v.reason


def test_digit_pattern_and_problems():
    assert digit_pattern(["Ġ12", "3"]) == (2, 1)
    assert digit_pattern(["Ġ", "1", "2", "+"]) == (1, 1)
    rows = addition_problems(9, seed=1)
    assert len(rows) == 100 and len(set(rows)) == 100 and "3+4=7" in rows
    assert rows == addition_problems(9, seed=1) != addition_problems(9, seed=2)
    assert split_problem("12+34=46") == ("12+34=", "46")


def test_off_majority_counts_numbers_not_split_the_usual_way():
    splits = NumberSplits({"c": {2: Counter({(2,): 8, (1, 1): 2}), 1: Counter({(1,): 5})}}, 0.0)
    assert splits.off_majority("c") == pytest.approx(2 / 15)
    assert splits.distinct("c", 2) == 2
    assert splits.tokens_per_number("c", 2) == pytest.approx(1.2)


def test_unspace_gives_word_starts():
    text, starts = unspace("Zoe is 68 years old.")
    assert text == "Zoeis68yearsold."
    assert starts == {3, 5, 7, 12, 15}
    assert inside_letters(text, starts) == {3, 12}  # is|68, 68|years and old|. are given away


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("c2") / "text.txt"
    lines = [f"Tom is {i} years old and lives in Westmere with {i + 3} cats." for i in range(300)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_split_digits_tokenizer_splits_every_number_into_digits(corpus):
    tok = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, split_digits=True), [corpus])
    splits = number_splits(tok, 1000)
    for ctx in splits.patterns:
        assert splits.off_majority(ctx) == 0.0
        assert splits.patterns[ctx][3] == Counter({(1, 1, 1): 900})
    assert splits.context_differs == 0.0


def test_boundary_scores_count_boundaries_words_and_tokens(corpus):
    unspaced = corpus.with_name("unspaced.txt")
    unspaced.write_text("\n".join(unspace(ln)[0] for ln in corpus.read_text().splitlines()))
    tok = train_tokenizer(TokenizerConfig(kind="unigram", vocab_size=400), [unspaced])
    every, letters = boundary_scores(tok, ["Tom is 12 years old."])
    assert every.actual == 5 and letters.actual == 2
    assert 0.0 <= every.f1 <= 1.0 and every.words == 6
    assert every.tokens >= every.predicted  # a token per boundary at least


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    ctx = quick_context(tmp_path)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert all(len(r) == len(res.columns) for r in res.rows)
    digits = res.numbers["numbers_split"]["bpe+digits"]
    assert digits["context_differs"] == 0.0  # split digits: one token per digit, always
    em = res.numbers["exact_match"]
    assert set(em) == {"bpe", "bpe+digits"} and all(e["n"] == 40 for e in em.values())
    assert set(res.numbers["boundaries"]) == {400, 512}
    for name in res.plots:
        assert (ctx.out / name).stat().st_size > 1000
    json.dumps(res.numbers, default=str)
