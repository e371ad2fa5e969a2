"""Label scoring: the shared-prompt scorer equals a plain forward of prompt + label, for every arch."""

from __future__ import annotations

import math

import pytest
import torch
from test_data_helpers import make_bpe_tokenizer
from world_helpers import build_tiny_world

from lmforge.common import LmforgeError
from lmforge.models import build_model
from lmforge.prompting.builder import PromptBuilder, sample_demos
from lmforge.prompting.scoring import (
    PromptTooLong,
    answer_label,
    common_prefix_len,
    generate_answers,
    regex_extractor,
    score_continuations,
    score_labels,
    score_prompts,
)
from lmforge.prompting.tasks import load_task

V = 400


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    world = build_tiny_world(tmp_path_factory.mktemp("score_world") / "world")
    task = load_task("topic", world=world)
    docs = [ex.fields["text"] for ex in task.train + task.test]
    tok = make_bpe_tokenizer(tmp_path_factory.mktemp("score_tok"), V, docs * 3)
    return task, tok


def model_of(arch: str, **kw):
    torch.manual_seed(0)
    if arch == "rnn":
        cfg = dict(vocab_size=V, d_model=32, d_embed=32, n_layer=1, **kw)
    else:
        cfg = dict(vocab_size=V, block_size=400, n_layer=2, n_head=4, d_model=32, init_std=0.3)
        cfg.update(kw)
    return build_model(arch, cfg).eval()


def reference(model, prompts, choices) -> torch.Tensor:
    """Summed log p of each choice from one cache-free forward of prompt + choice."""
    out = torch.zeros(len(prompts), len(choices), dtype=torch.float64)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            for j, c in enumerate(choices):
                logits, _ = model(torch.tensor([p + c])[:, :-1])
                lp = torch.log_softmax(logits[0].double(), -1)
                out[i, j] = sum(lp[len(p) - 1 + t, c[t]] for t in range(len(c)))
    return out


CHOICES = [[5, 17, 33], [40], [7, 8], [9, 10, 11, 12]]


@pytest.mark.parametrize(
    "arch,kw", [("llama", {}), ("llama", {"n_kv_head": 2}), ("gpt", {}), ("rnn", {})]
)
@pytest.mark.parametrize("share", [False, True])
def test_shared_cache_equals_a_plain_forward(setup, arch, kw, share):
    task, tok = setup
    b = PromptBuilder(task, tok)
    demos = sample_demos(task, 2, seed=1)
    prompts = [p.ids for p in b.build_many(demos, task.test[:7])]
    assert common_prefix_len(prompts) > 20
    model = model_of(arch, **kw)
    got = score_continuations(model, prompts, CHOICES, batch_size=3, share_prefix=share)
    assert (got - reference(model, prompts, CHOICES)).abs().max().item() <= 1e-5


def test_prompts_without_a_common_prefix_pad_left(setup):
    task, tok = setup
    b = PromptBuilder(task.with_format("no_instruction"), tok, start="none")
    prompts = [p.ids for p in b.build_many([], task.test[:6])]
    model = model_of("llama")
    got = score_continuations(model, prompts, CHOICES, batch_size=4)  # auto: no sharing
    assert len({len(p) for p in prompts}) > 1
    assert (got - reference(model, prompts, CHOICES)).abs().max().item() <= 1e-5


def test_labels_combine_synonyms_by_logsumexp_and_normalise(setup):
    task, tok = setup
    model = model_of("gpt")
    prompts = [[1, 50, 60, 70], [1, 80, 90]]
    label_ids = [[[5, 17], [40]], [[7, 8, 9]]]
    words = reference(model, prompts, [[5, 17], [40], [7, 8, 9]])
    s = score_labels(model, prompts, label_ids, ["a", "b"])
    assert torch.allclose(s.scores[:, 0], torch.logsumexp(words[:, :2], dim=-1), atol=1e-6)
    assert torch.allclose(s.scores[:, 1], words[:, 2], atol=1e-6)
    assert torch.allclose(s.probs.sum(-1), torch.ones(2, dtype=torch.float64))
    mean = score_labels(model, prompts, label_ids, ["a", "b"], normalize="mean")
    expected = torch.logsumexp(torch.stack([words[:, 0] / 2, words[:, 1]], -1), -1)
    assert torch.allclose(mean.scores[:, 0], expected, atol=1e-6)
    assert s.predictions() == [["a", "b"][j] for j in s.scores.argmax(-1).tolist()]


def test_task_prompts_score_every_label(setup):
    task, tok = setup
    b = PromptBuilder(task, tok)
    prompts = b.build_many(sample_demos(task, 4, seed=0), task.test[:5])
    s = score_prompts(model_of("llama"), b, prompts)
    assert s.scores.shape == (5, len(task.labels)) and bool(torch.isfinite(s.scores).all())
    flat = [ids for words in b.label_ids() for ids in words]
    ref = reference(model_of("llama"), [p.ids for p in prompts], flat)
    assert (s.word_scores - ref).abs().max().item() <= 1e-5


def test_a_prompt_longer_than_the_context_names_the_limit_and_the_prompt():
    model = model_of("llama", block_size=16)
    with pytest.raises(
        PromptTooLong, match=r"prompt 1 has 15 tokens \(\+3 label tokens\), .* context of 16"
    ):
        score_continuations(model, [[1] * 5, [1] * 15], [[2, 3, 4]])
    score_continuations(model, [[1] * 14], [[2, 3, 4]])  # 14 + 2 fed tokens fit


def test_bad_calls_are_one_line_errors():
    model = model_of("gpt")
    with pytest.raises(LmforgeError, match="prompt 0 is empty"):
        score_continuations(model, [[]], [[1]])
    with pytest.raises(LmforgeError, match="at least one token"):
        score_continuations(model, [[1]], [[]])
    with pytest.raises(LmforgeError, match="normalize"):
        score_labels(model, [[1]], [[[2]], [[3]]], ["a", "b"], normalize="max")


def test_generated_answers_map_to_labels(setup):
    task, tok = setup
    assert answer_label(" Sports, surely", task) == "sports"
    assert answer_label("music.", task) == "music"
    assert answer_label("no idea", task) is None
    assert regex_extractor(r"is (\w+)")("the answer is food") == "food"
    b = PromptBuilder(task, tok)
    prompts = b.build_many(sample_demos(task, 2, seed=0), task.test[:3])
    answers = generate_answers(model_of("llama"), tok, prompts, task, max_new_tokens=4)
    assert len(answers) == 3
    for a in answers:
        assert "\n" not in a.text and a.label in (None, *task.labels)
        assert a.label == answer_label(a.answer, task)


def test_the_scorer_is_exact_in_probability_terms(setup):
    """exp of the summed log-probs of every one-token continuation sums to 1."""
    model = model_of("llama")
    got = score_continuations(model, [[1, 2, 3], [4, 5]], [[t] for t in range(V)])
    assert math.isclose(float(got.exp().sum(-1)[0]), 1.0, rel_tol=1e-6)
