"""FLAN / T0-style mixtures: the YAML spec, weights, caps, held-out tasks and templates,
inverted templates, determinism, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from world_helpers import build_tiny_world

from lmforge.common import LmforgeError
from lmforge.data.instructions import (
    TEMPLATES,
    MixtureSpec,
    SourceSpec,
    build_mixture,
    load_mixture,
    load_mixture_spec,
    score,
)
from lmforge.data.instructions.world_fields import WORLD_HELDOUT, WORLD_TEMPLATES
from lmforge.data.world.templates import COT_INSTRUCTION


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _world_row(template_id: str, fields: dict, answer: str, **extra) -> dict:
    """A record as `lmforge world` writes it, rendered through the world's own template."""
    template = WORLD_TEMPLATES[template_id]
    prompt, target = template.render(fields), answer
    if extra.get("cot"):
        prompt, target = (
            f"{prompt}\n{COT_INSTRUCTION}",
            "\n".join([*extra.pop("reasoning"), f"Answer: {answer}"]),
        )
    task = template_id.split("/")[0]
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}],
        "task": task,
        "template": template_id,
        "answer": answer,
        "answer_type": extra.pop("answer_type", "choice"),
        **extra,
    }


REVIEWS = [
    ("The soup was wonderful and the staff were kind.", "positive"),
    ("The train was late and the seats were dirty.", "negative"),
    ("A lovely film with a great ending.", "positive"),
    ("The phone broke after one day.", "negative"),
]


@pytest.fixture
def data(tmp_path) -> Path:
    """World-like, GSM8K and T0 files under tmp/data, small enough to mix in milliseconds."""
    d = tmp_path / "data"
    world = [
        _world_row(f"sentiment/t{1 + i % 3}", {"text": text}, label, choices=["negative", "positive"])
        for i, (text, label) in enumerate(REVIEWS * 3)
    ] + [
        _world_row("sorting/ascending/t1", {"items": "3, 1, 2"}, "1, 2, 3", answer_type="sequence"),
        _world_row("sorting/words/t2", {"items": "pear, apple"}, "apple, pear", answer_type="sequence"),
        _world_row(
            "word_problem/t2",
            {"story": "Ann has 3 pens. Ann buys 2 more.", "question": "How many pens does Ann have?"},
            "5", answer_type="number", cot=True, reasoning=["Ann starts with 3 pens.", "3 + 2 = 5."],
        ),
    ]  # fmt: skip
    _jsonl(d / "world" / "train.jsonl", world)
    _jsonl(
        d / "world" / "heldout_templates.jsonl",
        [_world_row("sentiment/h1", {"text": t}, lab) for t, lab in REVIEWS],
    )
    _jsonl(
        d / "math" / "gsm8k.jsonl",
        [
            {
                "question": f"Tom has {i} apples and buys 2 more. How many apples does Tom have?",
                "answer": f"Tom has {i}+2 = <<{i}+2={i + 2}>>{i + 2} apples.\n#### {i + 2}",
            }
            for i in range(40)
        ],
    )
    t0 = d / "t0"
    for stem, label in (
        ("ag_news_classify", "World"),
        ("ag_news_recommend", "Sports"),
        ("rotten_tomatoes_Reviewer_Opinion", "good"),
    ):
        _jsonl(
            t0 / f"{stem}.jsonl",
            [{"prompt": f"{stem} {i}?", "completion": f"{label}<|endoftext|>"} for i in range(6)],
        )
    (t0 / "trec_fine_grained_ABBR.jsonl").write_text("")  # P3 exports hold empty templates
    return d


def _write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "mix.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


MIX = """\
seed: 0
sources:
  - {name: world, path: ../data/world/train.jsonl, weight: 1.0}
  - {name: gsm8k, path: ../data/math/gsm8k.jsonl, cap: 25}
  - {name: t0, path: "../data/t0/*.jsonl", cap_per_task: 4}
heldout_tasks: [sorting]
heldout_templates: [ag_news/recommend]
"""


def _snapshot(mix) -> list:
    return [(c.to_dicts(), c.meta) for c in mix.conversations]


def test_paths_resolve_against_the_yaml_folder_and_meta_names_source_and_task(
    tmp_path, data, monkeypatch
):
    path = _write_yaml(tmp_path, MIX)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    spec = load_mixture_spec(path)
    assert Path(spec.sources[0].path) == path.parent / "../data/world/train.jsonl"
    mix = load_mixture(path)
    assert mix.by_source == {"world": 13, "gsm8k": 25, "t0": 8}
    for c in mix.conversations:
        assert {"source", "task", "heldout_task", "heldout_template"} <= set(c.meta)
        assert c.meta["heldout_task"] is False and c.meta["heldout_template"] is False
        assert "fields" not in c.meta and "fields_kind" not in c.meta
    t0 = [c for c in mix.conversations if c.meta["source"] == "t0"]
    assert Counter(c.meta["task"] for c in t0) == {"ag_news": 4, "rotten_tomatoes": 4}
    report = mix.report()
    assert "| gsm8k | 1 | 40 | 0 | 0 | 40 | 25 | 0 | 25 |" in report
    assert "| t0 | 4 | 18 | 0 | 0 | 12 | 8 | 4 | 8 |" in report
    assert "| sorting | 0 | 2 |" in report


def test_heldout_tasks_and_templates_never_reach_training(tmp_path, data):
    path = _write_yaml(
        tmp_path, MIX.replace("[ag_news/recommend]", '[ag_news/recommend, "gsm8k/direct/*"]')
    )
    spec = load_mixture_spec(path)
    spec.sources.append(
        SourceSpec(name="wheld", path=str(data / "world" / "heldout_templates.jsonl"))
    )
    mix = build_mixture(spec)
    train_templates = {c.meta["template"] for c in mix.conversations}
    assert not any(c.meta["task"] == "sorting" for c in mix.conversations)
    assert "recommend" not in train_templates
    assert not any(t.startswith("gsm8k/direct/") for t in train_templates)
    # Held-out phrasings of the registry and of the world are never trained on either.
    assert not any(t in TEMPLATES and TEMPLATES[t].heldout for t in train_templates)
    assert not train_templates & WORLD_HELDOUT
    held = Counter(
        (c.meta["task"], c.meta["heldout_task"], c.meta["heldout_template"]) for c in mix.heldout
    )
    assert held[("sorting", True, False)] == 2
    assert held[("ag_news", False, True)] == 4  # capped like its source
    assert held[("sentiment", False, True)] == 4  # the world's held-out templates file
    assert {c.meta["source"] for c in mix.heldout} == {"world", "t0", "wheld"}
    # A world record flagged as a held-out task is held out whatever the spec says.
    flagged = _jsonl(
        tmp_path / "flagged.jsonl",
        [dict(_world_row("sentiment/t1", {"text": "Nice."}, "positive"), heldout_task=True)],
    )
    mix = build_mixture(
        MixtureSpec(
            sources=[
                SourceSpec(name="f", path=str(flagged)),
                SourceSpec(name="w", path=str(data / "world" / "train.jsonl")),
            ]
        )
    )
    assert [(c.meta["source"], c.meta["heldout_task"]) for c in mix.heldout] == [("f", True)]
    assert all(c.meta["source"] == "w" for c in mix.conversations)


def test_caps_keep_a_seeded_sample_per_task_and_overall(data):
    def mix(**kw):
        src = SourceSpec(name="t0", path=str(data / "t0"), **kw)
        return build_mixture(MixtureSpec(sources=[src]))

    assert Counter(c.meta["task"] for c in mix().conversations) == {
        "ag_news": 12,
        "rotten_tomatoes": 6,
    }
    assert Counter(c.meta["task"] for c in mix(cap_per_task=3).conversations) == {
        "ag_news": 3,
        "rotten_tomatoes": 3,
    }
    capped = mix(cap=5, cap_per_task=4)
    assert len(capped.conversations) == 5 and max(capped.by_task.values()) <= 4
    assert capped.sources[0].eligible == 18 and capped.sources[0].kept == 5
    # The sample is spread over the whole file, not its first lines.
    big = build_mixture(
        MixtureSpec(sources=[SourceSpec(name="g", path=str(data / "math" / "gsm8k.jsonl"), cap=10)])
    )
    answers = sorted(int(c.meta["answer"]) for c in big.conversations)
    assert len(answers) == 10 and answers[-1] > 20


def test_total_draws_with_replacement_per_source_weight(data):
    spec = MixtureSpec(
        seed=3,
        total=2000,
        sources=[
            SourceSpec(name="gsm8k", path=str(data / "math" / "gsm8k.jsonl"), weight=3.0),
            SourceSpec(name="t0", path=str(data / "t0"), weight=1.0),
            SourceSpec(name="world", path=str(data / "world" / "train.jsonl"), weight=0.0),
        ],
    )
    mix = build_mixture(spec)
    counts = mix.by_source
    assert len(mix.conversations) == 2000 and "world" not in counts
    assert abs(counts["gsm8k"] / 2000 - 0.75) < 0.05
    assert [s.in_mixture for s in mix.sources] == [counts["gsm8k"], counts["t0"], 0]
    # Repeats are separate objects: changing one's meta leaves the others alone.
    first = mix.conversations[0]
    twins = [c for c in mix.conversations if c.to_dicts() == first.to_dicts()]
    assert len(twins) > 1 and len({id(c.meta) for c in twins}) == len(twins)
    with pytest.raises(LmforgeError, match="every weight is 0"):
        build_mixture(
            MixtureSpec(total=10, sources=[SourceSpec(name="w", path=str(data / "t0"), weight=0.0)])
        )


def test_same_seed_same_mixture_another_seed_another(tmp_path, data):
    path = _write_yaml(tmp_path, MIX + "total: 60\n")
    a, b = load_mixture(path), load_mixture(path)
    assert _snapshot(a) == _snapshot(b)
    assert [(c.to_dicts(), c.meta) for c in a.heldout] == [
        (c.to_dicts(), c.meta) for c in b.heldout
    ]
    other = load_mixture(_write_yaml(tmp_path, MIX.replace("seed: 0", "seed: 1") + "total: 60\n"))
    assert _snapshot(other) != _snapshot(a)
    assert Counter(map(str, _snapshot(other))) != Counter(map(str, _snapshot(a)))  # not only order


def test_gsm8k_is_phrased_through_registry_templates_cot_and_direct_scored_alike(data):
    src = SourceSpec(name="gsm8k", path=str(data / "math" / "gsm8k.jsonl"))
    mix = build_mixture(MixtureSpec(sources=[src]))
    used = Counter(c.meta["template"] for c in mix.conversations)
    seen = {
        t.id for t in TEMPLATES.values() if t.kind == "gsm8k" and not t.heldout and not t.inverted
    }
    assert set(used) == seen  # 40 records spread over the 4 seen forward phrasings
    for c in mix.conversations:
        assert c.meta["extractor"] == "gsm8k" and c.meta["answer_type"] == "number"
        assert score(c.meta, c.messages[1].content) == 1.0
        assert ("<<" in c.messages[1].content) is False
        assert c.meta["cot"] is c.meta["template"].startswith("gsm8k/cot/")
    only_cot = build_mixture(
        MixtureSpec(sources=[SourceSpec(name="g", path=src.path, templates=["gsm8k/cot/*"])])
    )
    assert {c.meta["template"] for c in only_cot.conversations} == {"gsm8k/cot/t1", "gsm8k/cot/t2"}
    # Naming only a held-out template builds an evaluation set: everything is held out.
    with pytest.raises(LmforgeError, match="the mixture is empty"):
        build_mixture(
            MixtureSpec(sources=[SourceSpec(name="g", path=src.path, templates=["gsm8k/cot/h1"])])
        )
    spec = MixtureSpec(
        sources=[
            SourceSpec(name="g", path=src.path, templates=["gsm8k/cot/h1"]),
            SourceSpec(name="t", path=str(data / "t0")),
        ]
    )
    held = build_mixture(spec).heldout
    assert len(held) == 40 and {c.meta["template"] for c in held} == {"gsm8k/cot/h1"}
    assert all(c.meta["heldout_template"] for c in held)


def test_inverted_templates_turn_gsm8k_and_world_tasks_around(data):
    mix = build_mixture(
        MixtureSpec(
            seed=1,
            sources=[
                SourceSpec(name="g", path=str(data / "math" / "gsm8k.jsonl"), inverted=True, templates=["gsm8k/inverse/*"]),
                SourceSpec(name="w", path=str(data / "world" / "train.jsonl"), inverted=True, templates=["*/inverse/*"]),
            ],
        )
    )  # fmt: skip
    by_template = Counter(c.meta["template"] for c in mix.conversations)
    assert set(by_template) == {
        "gsm8k/inverse/t1",
        "sentiment/inverse/t1",
        "word_problem/inverse/t1",
    }
    for c in mix.conversations:
        user, assistant = c.messages[0].content, c.messages[1].content
        assert "answer" not in c.meta and "extractor" not in c.meta  # free text
        if c.meta["task"] == "gsm8k":
            assert assistant.startswith("Tom has") and assistant.endswith(
                "How many apples does Tom have?"
            )
            assert "Solution:\nTom has" in user and "<<" not in user
        elif c.meta["task"] == "sentiment":
            label = user.removeprefix("Write a short ").removesuffix(" review.")
            assert (assistant, label) in REVIEWS
        else:
            assert assistant == "Ann has 3 pens. Ann buys 2 more. How many pens does Ann have?"
            assert user.endswith("Ann starts with 3 pens.\n3 + 2 = 5.\nAnswer: 5")
    # The held-out inverted phrasings stay out; sorting has no inverted template: filtered.
    assert mix.sources[1].filtered == 2
    assert not any(TEMPLATES[t].heldout for t in by_template)


def test_default_world_records_are_used_as_they_are(data):
    mix = build_mixture(
        MixtureSpec(
            sources=[
                SourceSpec(name="w", path=str(data / "world" / "train.jsonl"), tasks=["sent*"])
            ]
        )
    )
    rows = [json.loads(s) for s in (data / "world" / "train.jsonl").read_text().splitlines()]
    want = sorted(json.dumps(r["messages"]) for r in rows if r["task"] == "sentiment")
    assert sorted(json.dumps(c.to_dicts()) for c in mix.conversations) == want
    assert mix.sources[0].filtered == 3  # sorting and word_problem: not in `tasks`
    for c in mix.conversations:
        assert score(c.meta, c.messages[1].content) == 1.0 and c.meta["extractor"] == "checker"


ERRORS = [
    ("seed: 0\nsedd: 1\nsources:\n  - {name: w, path: ../data/t0}\n", "mix.yaml:2: sedd: unknown field"),
    ("seed: 0\nsources:\n  - name: w\n    path: ../data/t0\n    wieght: 2\n", "mix.yaml:5: sources[0].wieght: unknown field; known fields: "),
    ("sources:\n  - name: w\n    path: ../data/t0\n    weight: -1\n", "mix.yaml:4: sources[0].weight: must be >= 0, got -1"),
    ("sources:\n  - name: w\n    path: ../data/nothing.jsonl\n", "mix.yaml:3: sources[0] (w).path: "),
    ("seed: 0\n", "mix.yaml: sources: no sources; add at least one"),
    ("sources: []\n", "mix.yaml: sources: no sources"),
    ("sources: {name: w}\n", "mix.yaml:1: sources: expected a list"),
    ("sources:\n  - just-a-path\n", "mix.yaml:2: sources[0]: expected a mapping"),
    ("sources:\n  - {path: ../data/t0}\n", "mix.yaml:2: sources[0].name: missing"),
    ("sources:\n  - {name: w, path: ../data/t0, fmt: xml}\n", "mix.yaml:2: sources[0].fmt: got 'xml'; allowed: auto"),
    ("sources:\n  - {name: w, path: ../data/t0}\n  - {name: w, path: ../data/t0}\n", "mix.yaml:3: sources[1].name: 'w' is used twice"),
    ("sources:\n  - {name: w, path: ../data/t0, cap: 0}\n", "sources[0].cap: must be >= 1"),
    ("total: lots\nsources:\n  - {name: w, path: ../data/t0}\n", "mix.yaml:1: total: expected int, got 'lots'"),
    ("sources:\n  - {name: w, path: '../data/t0/*.csv'}\n", "glob matched no files"),
    ("sources: [\n", "mix.yaml: not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize("text, want", ERRORS)
def test_spec_errors_are_one_line_with_file_and_line(tmp_path, data, text, want):
    path = _write_yaml(tmp_path, text)
    with pytest.raises(LmforgeError) as e:
        load_mixture(path)
    msg = str(e.value)
    assert want in msg, msg
    assert "\n" not in msg
    if want.startswith("mix.yaml"):
        assert msg.startswith(str(path.parent / want.split(" ")[0][:-1])), msg


def test_a_source_whose_filters_leave_nothing_is_an_error(data):
    with pytest.raises(
        LmforgeError,
        match=r"source 'w': no conversations left after its filters \(read 18; tasks: \['nope'\]",
    ):
        build_mixture(
            MixtureSpec(sources=[SourceSpec(name="w", path=str(data / "t0"), tasks=["nope"])])
        )
    with pytest.raises(LmforgeError, match="sources: no sources"):
        build_mixture(MixtureSpec())


def test_a_mixture_of_a_built_world(tmp_path):

    world = tmp_path / "world"
    build_tiny_world(world, train_per_family=12)
    path = _write_yaml(
        tmp_path,
        "seed: 7\nsources:\n"
        "  - {name: world, path: ../world/instructions/train.jsonl, inverted: true}\n"
        "  - {name: dialogues, path: ../world/dialogues/train.jsonl, weight: 0.5}\n"
        "  - {name: unseen, path: ../world/instructions/heldout_templates.jsonl}\n"
        "heldout_tasks: [sorting]\ntotal: 300\n",
    )
    mix = load_mixture(path)
    assert len(mix.conversations) == 300
    assert set(mix.by_source) == {"world", "dialogues"}
    assert "sorting" not in mix.by_task and mix.heldout_by_task["sorting"] > 0
    assert not {c.meta["template"] for c in mix.conversations} & WORLD_HELDOUT
    assert any(c.meta["template"].endswith("/inverse/t1") for c in mix.conversations)
    unseen = [c for c in mix.heldout if c.meta["source"] == "unseen"]
    assert unseen and all(c.meta["heldout_template"] or c.meta["heldout_task"] for c in unseen)
    # Every checkable conversation scores 1.0 against its own target.
    checkable = [c for c in mix.conversations + mix.heldout if "extractor" in c.meta]
    assert checkable and all(score(c.meta, c.messages[-1].content) == 1.0 for c in checkable)
