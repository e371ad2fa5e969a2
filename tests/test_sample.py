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
    texts = sample_run(tiny_run, "Boris", max_new_tokens=10, n=2, seed=1, out=buf)
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
        cli(capsys, "sample", "--run", tiny_run, "--num-samples", "0"), "n: must be >= 1"
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


def test_samples_share_one_prefill_and_show_in_turn(tiny_run, monkeypatch):
    from lmforge.inference import engine

    shapes = []
    logits = engine._Run._logits

    def spy(self, ids, cache):
        shapes.append(tuple(ids.shape))
        return logits(self, ids, cache)

    monkeypatch.setattr(engine._Run, "_logits", spy)
    buf = io.StringIO()
    texts = sample_run(tiny_run, "Anna went", max_new_tokens=8, n=3, seed=2, out=buf)
    assert [s for s in shapes if s[1] > 1][:1] == [shapes[0]] and shapes[0][0] == 1
    assert {b for b, t in shapes[1:]} <= {1, 2, 3} and shapes[1][0] == 3
    shown = buf.getvalue()
    expected = "".join(f"--- sample {i + 1} ---\n{t}\n" for i, t in enumerate(texts))
    assert shown == expected  # all three generated together, shown one after another


def test_stop_strings_and_repetition_penalty_from_the_cli(tiny_run, capsys):
    args = ["sample", "--run", tiny_run, "--prompt", "Anna", "--max-new-tokens", "20",
            "--temperature", "0"]  # fmt: skip
    free = cli(capsys, *args)
    assert free.returncode == 0, free.stderr
    new = free.stdout[len("Anna") :].rstrip("\n")
    stop = new.strip()[2:4]
    assert len(stop) == 2 and stop in new
    cut = cli(capsys, *args, "--stop-strings", stop)
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout == "Anna" + new[: new.index(stop)] + "\n"  # cut before the stop string
    pen = cli(capsys, *args, "--repetition-penalty", "50")
    assert pen.returncode == 0 and pen.stdout != free.stdout
    assert_clean_error(cli(capsys, *args, "--repetition-penalty", "0"), "repetition_penalty")


def test_sample_help_shows_the_verbs_defaults(capsys):
    r = cli(capsys, "sample", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "(default: 0.8)" in text and "(default: 50)" in text and "(default: 200)" in text
    assert "--repetition-penalty" in text and "--stop-strings" in text and "--n INT" in text
