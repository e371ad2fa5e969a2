"""`lmforge fewshot`: the table, the output folder and its policy, and bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_clean_error, run_lmforge_inprocess
from test_data_helpers import make_bpe_tokenizer, write_jsonl
from world_helpers import build_tiny_world

cli = run_lmforge_inprocess


def make_prompting_run(root: Path, *, block_size: int = 512, seed: int = 0) -> dict[str, Path]:
    """A tiny world, a BPE tokenizer of its texts, a random LLaMA exported to Hugging Face
    (``hf``) and imported back as an lmforge run (``run``): no training needed."""
    import torch

    from lmforge.export.hf import export_hf, import_hf
    from lmforge.models import build_model
    from lmforge.prompting.tasks import load_task

    world = build_tiny_world(root / "world")
    docs = [
        ex.fields["text"]
        for name in ("sentiment", "topic")
        for ex in (lambda t: t.train + t.test)(load_task(name, world=world))
    ]
    tok = make_bpe_tokenizer(root / "tok", 400, docs * 3)
    torch.manual_seed(seed)
    model = build_model(
        "llama",
        dict(vocab_size=tok.vocab_size, block_size=block_size, n_layer=2, n_head=4, d_model=32,
             init_std=0.3),
    ).eval()  # fmt: skip
    export_hf(model, tok, root / "hf")
    import_hf(root / "hf", root / "run")
    return {"world": world, "run": root / "run", "hf": root / "hf", "tok": root / "tok"}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    return make_prompting_run(tmp_path_factory.mktemp("fewshot"))


def fewshot(made, *args):
    return cli("fewshot", "--run", made["run"], "--world", made["world"], *args)


def test_table_and_output_folder(made, tmp_path):
    out = tmp_path / "out"
    r = fewshot(made, "--task", "sentiment", "--k", "0,2", "--seeds", "2", "--calibrate",
                "--out", out, "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("run@0 on sentiment (format world)")
    head = lines[1]
    assert "accuracy" in head and "accuracy (calibrated)" in head and "(affine)" not in head
    rows = [ln for ln in lines if ln.startswith("| 0 ") or ln.startswith("| 2 ")]
    assert [ln.split("|")[2].strip() for ln in rows] == ["1", "2"]  # k=0 has one draw
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "accuracy.png",
        "labels.png",
        "predictions.jsonl",
        "results.json",
        "results.md",
    ]
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "lmforge fewshot" and doc["task"]["name"] == "sentiment"
    assert [row["k"] for row in doc["summary"]] == [0, 2]
    assert len(doc["evals"]) == 3 and len(doc["evals"][2]["demos"]) == 2
    assert len(doc["evals"][1]["p_cf"]) == 2
    assert doc["evals"][0]["last_label_share"] is None  # k=0: no last example
    assert 0 <= doc["evals"][1]["last_label_share_calibrated"] <= 1
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 * 8
    p = preds[-1]
    assert {"label", "pred", "probs", "pred_calibrated", "probs_calibrated"} <= set(p)
    assert abs(sum(p["probs"].values()) - 1) < 1e-4
    acc = sum(x["correct"] for x in preds if x["k"] == 2 and x["seed"] == 0) / 8
    assert doc["evals"][1]["uncalibrated"]["accuracy"] == acc
    assert "| k | seeds |" in (out / "results.md").read_text()
    # Its own earlier output: only with --force.
    r = fewshot(made, "--task", "sentiment", "--k", "1", "--seeds", "1", "--out", out)
    assert_clean_error(r, "--force")
    r = fewshot(made, "--task", "sentiment", "--k", "1", "--seeds", "1", "--out", out,
                "--force", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 8


def test_formats_orders_and_generation(made):
    r = fewshot(made, "--task", "topic", "--fmt", "input_output", "--k", "4", "--seeds", "1",
                "--order", "music,music,food,food", "--limit", "5", "--affine", "4", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "format input_output" in r.stdout and "| 4 | 1 |" in r.stdout
    assert "accuracy (affine)" in r.stdout
    r = fewshot(made, "--task", "sentiment", "--k", "1", "--seeds", "1", "--scoring",
                "generate", "--max-new-tokens", "3", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_a_reference_set(made, shared_data):
    r = cli("fewshot", "--run", made["run"], "--task", "sst2", "--data-dir",
            shared_data / "classification", "--k", "1", "--seeds", "1", "--limit", "6",
            "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "on sst2 (format cbu)" in r.stdout and "| 1 | 1 |" in r.stdout


def _spec(tmp_path: Path, rows, **spec) -> Path:
    write_jsonl(tmp_path / "rows.jsonl", rows)
    body = {"labels": ["no", "yes"], "train": "rows.jsonl", "test": "rows.jsonl",
            "format": {"template": "Text: {text}\nAnswer:"}, **spec}  # fmt: skip
    (tmp_path / "task.yaml").write_text(json.dumps(body))
    return tmp_path / "task.yaml"


ROWS = [{"text": f"a short text {i}", "label": "yes" if i % 2 else "no"} for i in range(6)]


def test_a_user_task_file(made, tmp_path):
    r = cli("fewshot", "--run", made["run"], "--task", _spec(tmp_path, ROWS), "--k", "2",
            "--seeds", "2", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "on task (format format0)" in r.stdout


def test_bad_input_is_one_line_and_writes_nothing(made, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--task", "imdb"], ["unknown task 'imdb'", "sst2", "agnews", "trec", "rte", "cb"]),
        (["--task", "sentiment", "--k", "9"], ["k=9", "8 examples"]),
        (["--task", "sentiment", "--k", "4", "--order", "positive,positive"], ["order", "k=2"]),
        (["--task", "sentiment", "--k", "2", "--order", "positive,positive,positive"],
         ["k is 2"]),
        (["--task", "sentiment", "--calibrate", "--scoring", "generate"], ["calibration needs label probabilities"]),
        (["--task", "sentiment", "--fmt", "fancy"], ["no format named 'fancy'", "world"]),
    ]  # fmt: skip
    for args, needles in cases:
        r = fewshot(made, *args, "--out", out)
        assert_clean_error(r, *needles)
        assert not out.exists()
    bad_word = _spec(
        tmp_path, ROWS, label_words={"no": "", "yes": "yes"},
        format={"template": "Text: {text}\nAnswer:", "label_sep": ""},
    )  # fmt: skip
    r = cli("fewshot", "--run", made["run"], "--task", bad_word, "--out", out)
    assert_clean_error(r, "label word '' of label 'no' tokenizes to nothing")
    bad_label = _spec(tmp_path, [*ROWS, {"text": "x", "label": "maybe"}])
    r = cli("fewshot", "--run", made["run"], "--task", bad_label, "--out", out)
    assert_clean_error(r, "rows.jsonl:7", "'maybe'", "no, yes")
    assert not out.exists()


def test_a_prompt_longer_than_the_context_names_the_limit_and_the_example(tmp_path):
    short = make_prompting_run(tmp_path / "short", block_size=64)
    out = tmp_path / "out"
    r = cli("fewshot", "--run", short["run"], "--world", short["world"], "--task", "topic",
            "--k", "4", "--seeds", "1", "--out", out)  # fmt: skip
    assert_clean_error(r, "context of 64 tokens", "test example 0 (", "test.jsonl:", "--k")
    assert not out.exists()
