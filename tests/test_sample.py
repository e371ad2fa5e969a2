"""`lmforge sample`: streams a continuation from a run's latest (or chosen) checkpoint."""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import io

from conftest import assert_clean_error
from test_pretrain_helpers import cli, tiny_run, tiny_shards  # noqa: F401 (fixtures)

from lmforge.eval.sample import sample_run


def test_sample_streams_and_is_seeded(tiny_run, capsys):
    args = ["sample", "--run", tiny_run, "--prompt", "Anna went", "--max-new-tokens", "12"]
    r1 = cli(capsys, *args, "--seed", "3")
    r2 = cli(capsys, *args, "--seed", "3")
    assert r1.returncode == 0, r1.stderr
    assert r1.stdout == r2.stdout and r1.stdout.startswith("Anna went")
    assert len(r1.stdout.strip()) > len("Anna went")


def test_streamed_text_equals_the_returned_text(tiny_run):
    buf = io.StringIO()
    texts = sample_run(tiny_run, "Boris", max_new_tokens=10, num_samples=2, seed=1, out=buf)
    assert len(texts) == 2 and all(t.startswith("Boris") for t in texts)
    shown = buf.getvalue()
    assert "--- sample 1 ---" in shown and "--- sample 2 ---" in shown
    for t in texts:
        assert t in shown  # what was streamed token by token is the final decoded text


def test_sample_an_older_step_and_greedy(tiny_run, capsys):
    a = cli(capsys, "sample", "--run", tiny_run, "--step", "8", "--temperature", "0",
            "--max-new-tokens", "6", "--prompt", "Clara")  # fmt: skip
    b = cli(capsys, "sample", "--run", tiny_run, "--step", "8", "--temperature", "0",
            "--max-new-tokens", "6", "--prompt", "Clara", "--seed", "9")  # fmt: skip
    assert a.returncode == 0 and a.stdout == b.stdout  # greedy ignores the seed


def test_sample_errors_are_one_line(tiny_run, tmp_path, capsys):
    assert_clean_error(cli(capsys, "sample", "--run", tmp_path / "nope"), "no such run folder")
    assert_clean_error(cli(capsys, "sample", "--run", tiny_run, "--step", "5"), "step_5")
    assert_clean_error(cli(capsys, "sample", "--run", tiny_run, "--top-p", "0"), "top_p")
    assert_clean_error(
        cli(capsys, "sample", "--run", tiny_run, "--num-samples", "0"), "num_samples"
    )


def test_sample_compile_flag_reaches_torch_compile(tiny_run, capsys, monkeypatch):
    """--compile runs the model through torch.compile (stubbed here: compiling is slow;
    compiled tokens equal eager ones in tests/test_inference.py)."""
    import torch

    compiled = []

    def fake_compile(model, *args, **kwargs):
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    args = ["sample", "--run", tiny_run, "--temperature", "0", "--max-new-tokens", "6"]
    plain = cli(capsys, *args, "--prompt", "Clara")
    assert compiled == []
    fast = cli(capsys, *args, "--prompt", "Clara", "--compile")
    assert fast.returncode == 0, fast.stderr
    assert compiled == ["GPT"] and fast.stdout == plain.stdout
