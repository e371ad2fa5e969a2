"""`lmforge prompt-tune`: the batch source, the stage through the one loop, exact resume after
SIGKILL, the soft-prompt file in use, bad input.

The task is built here (`TinyTask`, the `prompting.tasks.ClassificationTask` contract:
name, labels, label_words, train, test, query_text, label_text) from the words of the
tiny run's corpus, and handed to the stage by replacing its task loader (also in the
subprocess of the kill test), so these tests do not depend on the shipped task files.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error
from sft_helpers import files, train_losses
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    NAMES,
    PLACES,
    assert_same_weights,
    cli,
    tiny_run,
    tiny_shards,
    weights,
)

from lmforge.common import LmforgeError
from lmforge.models.soft_prompt import SoftLayout, read_soft_prompt
from lmforge.prompting.soft_batches import (
    IGNORE,
    LabelledRow,
    SoftPromptBatches,
    collate,
    task_rows,
)
from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint

HERE = Path(__file__).resolve().parent
KILLED = -signal.SIGKILL


@dataclass
class Example:
    fields: dict[str, str]
    label: str


@dataclass
class TinyTask:
    """A two-label task: does the person go somewhere by the water?"""

    name: str = "tiny-places"
    labels: list[str] = field(default_factory=lambda: ["water", "land"])
    label_words: dict[str, list[str]] = field(
        default_factory=lambda: {"water": ["cats"], "land": ["mill"]}
    )
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)

    def query_text(self, ex: Example) -> str:
        return f"Trip: {ex.fields['text']}\nWhere:"

    def label_text(self, label: str) -> str:
        return " " + self.label_words[label][0]


def tiny_task(n_train: int = 24, n_test: int = 8, seed: int = 0, **kw) -> TinyTask:
    rng = random.Random(seed)
    wet = {"the river", "the station"}

    def ex() -> Example:
        place = rng.choice(PLACES)
        return Example({"text": f"{rng.choice(NAMES)} went to {place}."},
                       "water" if place in wet else "land")  # fmt: skip

    return TinyTask(train=[ex() for _ in range(n_train)], test=[ex() for _ in range(n_test)], **kw)


TASK_ENV = "LMFORGE_TEST_TINY_TASK"  # JSON of tiny_task's keyword arguments (subprocesses)


def use_tiny_task(monkeypatch=None, **kw) -> None:
    """Make the stage's task loader return `tiny_task(**kw)` (in this process)."""
    import lmforge.stages.prompt_tune as stage

    def load(cfg):
        return tiny_task(**kw)

    if monkeypatch is not None:
        monkeypatch.setattr(stage, "load_task_of", load)
    else:
        stage.load_task_of = load


PT = [
    "--task", "tiny", "--batch-size", "4", "--threads", "1", "--dtype", "fp32", "--log-every",
    "1", "--lr", "0.1", "--warmup", "2", "--n-before", "3", "--n-after", "2", "--quiet",
]  # fmt: skip
STEPS = ["--max-steps", "6", "--save-every", "3", "--eval-every", "3"]


def proc(*args, after_step: int | None = None, timeout: float = 180):
    """`lmforge ARGS` in a subprocess with the tiny task, killed after a step if asked."""
    kill = f"_killable.kill_after_step({after_step})" if after_step is not None else ""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_prompt_tune as t; "
        f"t.use_tiny_task(); import _killable; {kill}\n"
        f"from lmforge.cli.main import main; main({[str(a) for a in args]!r})"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


# --- rows and batches ----------------------------------------------------------------------


class CharTok:
    """A stand-in tokenizer: one id per character (ids 10..), "" encodes to []."""

    def encode(self, text: str) -> list[int]:
        return [10 + (ord(c) % 40) for c in text]


def test_rows_put_the_soft_tokens_around_the_query_and_train_only_the_label():
    task = tiny_task(4, 0)
    lay = SoftLayout(100, 2, 1)
    rows = task_rows(task, CharTok(), lay, task.train, 60)
    tok = CharTok()
    for r, ex in zip(rows, task.train):
        q, lab = tok.encode(task.query_text(ex)), tok.encode(task.label_text(ex.label))
        assert list(r.ids) == [100, 101, *q, 102, *lab] and r.n_label == len(lab)
    batch = collate(rows[:2], pad_id=0)
    T = max(len(r) for r in rows[:2]) - 1
    assert batch["ids"].shape == batch["targets"].shape == (2, T)
    for b, r in enumerate(rows[:2]):
        n = len(r)
        want = [IGNORE] * (n - 1 - r.n_label) + list(r.ids[n - r.n_label :])
        want += [IGNORE] * (T - len(want))
        assert batch["targets"][b].tolist() == want
        assert batch["ids"][b, : min(n, T)].tolist() == list(r.ids[:T])
        assert (batch["ids"][b, n:] == 0).all()  # right padding


def test_bad_rows_are_one_line_errors():
    lay = SoftLayout(100, 2, 2)
    task = tiny_task(3, 0)
    with pytest.raises(LmforgeError, match=r"train example 0 is \d+ tokens .* limit of 20"):
        task_rows(task, CharTok(), lay, task.train, 20)
    empty = tiny_task(3, 0, label_words={"water": [""], "land": ["mill"]})
    empty.label_text = lambda label: "" if label == "water" else " mill"
    with pytest.raises(LmforgeError, match="label 'water'.*tokenizes to nothing"):
        task_rows(empty, CharTok(), lay, empty.train, 200)
    stray = tiny_task(3, 0)
    stray.train[1].label = "sky"
    with pytest.raises(LmforgeError, match="train example 1 has label 'sky'"):
        task_rows(stray, CharTok(), lay, stray.train, 200)


def _rows(n: int = 10) -> list[LabelledRow]:
    rng = random.Random(0)
    return [LabelledRow(tuple(rng.randrange(1, 50) for _ in range(rng.randint(4, 9))), 1 + i % 2)
            for i in range(n)]  # fmt: skip


def same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        torch.equal(a["ids"], b["ids"]) and torch.equal(a["targets"], b["targets"])
        for a, b in zip(xs, ys)
    )


def test_batches_are_seeded_resumable_and_shard_like_one_process():
    rows = _rows()
    make = lambda **kw: SoftPromptBatches(rows, 3, 0, seed=4, **kw)  # noqa: E731
    a = make()
    first = [a.next_batch() for _ in range(2)]
    fresh = make()
    assert same(first, [fresh.next_batch() for _ in range(2)])
    assert not same(first, [SoftPromptBatches(rows, 3, 0, seed=5).next_batch() for _ in (0, 1)])
    state = json.loads(json.dumps(a.state_dict()))
    want = [a.next_batch() for _ in range(5)]  # crosses epochs
    b = make()
    b.load_state_dict(state)
    assert same([b.next_batch() for _ in range(5)], want)
    with pytest.raises(LmforgeError, match="same --task"):
        SoftPromptBatches(rows[:-1], 3, 0).load_state_dict(state)
    # Two ranks of 3 rows each see what one process of 6 rows sees.
    one = SoftPromptBatches(rows, 6, 0, seed=4)
    ranks = [SoftPromptBatches(rows, 3, 0, seed=4, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(4):
        whole, parts = one.next_batch(), [r.next_batch() for r in ranks]
        for k in ("ids", "targets"):
            assert torch.equal(torch.cat([p[k] for p in parts]), whole[k])
    # Every epoch is every row once, in the epoch's shuffled order, reshuffled each epoch.
    src = SoftPromptBatches(rows, 1, 0, seed=1)
    assert sorted(src.plan(0)) == list(range(len(rows))) and src.plan(0) != src.plan(1)
    for i in src.plan(0):
        got = src.next_batch()["ids"][0].tolist()
        assert got == list(rows[i].ids[:-1])
    assert (src.epoch_index, src.cursor) == (1, 0)
    # Evaluation: every row's label tokens once, on any number of ranks, same batch counts.
    total = sum(r.n_label for r in rows)
    for world in (1, 2, 3):
        shares = [SoftPromptBatches(rows, 2, 0, rank=r, world_size=world,
                                    shuffle=False).eval_batches() for r in range(world)]  # fmt: skip
        assert len({len(s) for s in shares}) == 1
        assert sum(int((b["targets"] != IGNORE).sum()) for s in shares for b in s) == total


# --- the stage ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_run(tiny_run, tmp_path_factory):
    """6 uninterrupted steps (checkpoints at 3 and 6)."""
    mp = pytest.MonkeyPatch()
    use_tiny_task(mp)
    from conftest import run_lmforge_inprocess

    out = tmp_path_factory.mktemp("pt_ref") / "run"
    try:
        r = run_lmforge_inprocess("prompt-tune", "--from", tiny_run, "--out", out, *PT, *STEPS)
    finally:
        mp.undo()
    assert r.returncode == 0, r.stderr
    return out


def test_the_run_folder_is_complete_and_the_base_is_untouched(ref_run, tiny_run):
    for name in ("config.yaml", "tokenizer/tokenizer.json", "metrics.jsonl", "report.md",
                 "soft_prompt.safetensors", "checkpoints/step_3", "checkpoints/step_6"):  # fmt: skip
        assert (ref_run / name).exists(), name
    ck = open_checkpoint(latest_checkpoint(ref_run))
    assert ck.state["stage"] == "prompt-tune" and ck.state["parent"]["run"] == str(tiny_run)
    parent, got = weights(latest_checkpoint(tiny_run)), weights(latest_checkpoint(ref_run))
    assert sorted(set(got) - set(parent)) == ["tok_emb.soft"]
    for k, v in parent.items():
        assert torch.equal(got[k], v), k  # the frozen model: bitwise the parent's
    table, info = read_soft_prompt(ref_run / "soft_prompt.safetensors")
    assert torch.equal(table, got["tok_emb.soft"]) and table.shape == (5, 64)
    assert info["base_weights_sha256"] == ck.state["parent"]["weights_sha256"]
    n_state = sum(s["exp_avg"].numel() for s in ck.optimizer_state()["state"].values())
    assert n_state == 5 * 64  # the optimizer holds the soft tokens only
    report = (ref_run / "report.md").read_text()
    assert "test accuracy (label scoring, with the soft prompt)" in report
    assert "| trainable parameters | 320 |" in report
    result = json.loads((ref_run / "result.json").read_text())
    assert result["trainable_params"] == 320 and result["method"] == "5 soft tokens (3+2)"
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["steps"] == 6
    # tokens_seen counts label tokens: one per example here (" cats" / " mill").
    assert ck.state["tokens_seen"] == 6 * 4


def test_a_few_steps_lower_the_loss(tiny_run, tmp_path, capsys, monkeypatch):
    use_tiny_task(monkeypatch)
    out = tmp_path / "run"
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--max-steps", "12",
            "--save-every", "0", "--eval-every", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    losses = [x for _, x in train_losses(out)]
    assert len(losses) == 12
    # The 12-step parent barely reads its context, so 5 soft tokens move the loss on the
    # labels from ~5.3 to ~4.8 here (it plateaus there); the frozen base stays as it was.
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.3, (first, last)
    parent, got = weights(latest_checkpoint(tiny_run)), weights(latest_checkpoint(out))
    assert all(torch.equal(got[k], v) for k, v in parent.items())


def test_killed_then_resumed_is_bitwise_equal(ref_run, tiny_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    r = proc("prompt-tune", "--from", tiny_run, "--out", out, *PT, *STEPS, after_step=4)
    assert r.returncode == KILLED, r.stderr
    assert latest_checkpoint(out).name == "step_3"
    assert not (out / "soft_prompt.safetensors").exists()
    use_tiny_task(monkeypatch)
    r = cli(capsys, "prompt-tune", "--out", out, "--resume", "--quiet")  # in this process
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref_run / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref_run)
    a, b = (p / "soft_prompt.safetensors" for p in (out, ref_run))
    assert torch.equal(read_soft_prompt(a)[0], read_soft_prompt(b)[0])


def test_resume_of_a_finished_run_and_force(ref_run, tiny_run, tmp_path, capsys, monkeypatch):
    import shutil

    use_tiny_task(monkeypatch)
    run = shutil.copytree(ref_run, tmp_path / "run")
    before = files(run)
    r = cli(capsys, "prompt-tune", "--out", run, "--resume")
    assert r.returncode == 0, r.stderr
    assert "is complete" in r.stdout and files(run) == before
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", run, *PT, *STEPS)
    assert_clean_error(r, "--force")
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", run, *PT, "--max-steps", "2",
            "--force")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert open_checkpoint(latest_checkpoint(run)).step == 2
    assert not (run / "checkpoints" / "step_6").exists()


@pytest.mark.parametrize("method", ["lora", "full"])
def test_lora_and_full_fine_tuning_train_the_same_task(method, tiny_run, tmp_path, capsys,
                                                        monkeypatch):  # fmt: skip
    use_tiny_task(monkeypatch)
    out = tmp_path / method
    how = ["--lora", "r=2,targets=q,v"] if method == "lora" else ["--full"]
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--n-before", "0",
            "--n-after", "0", *how, "--lr", "3e-3", "--max-steps", "3", "--save-every", "0",
            "--eval-every", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not (out / "soft_prompt.safetensors").exists()
    result = json.loads((out / "result.json").read_text())
    parent, got = weights(latest_checkpoint(tiny_run)), weights(latest_checkpoint(out))
    changed = [k for k, v in parent.items() if not torch.equal(got[k], v)]
    if method == "lora":
        # Only the adapters train: rank 2 on the q and v slices of every layer's qkv.
        assert changed == [] and result["trainable_params"] == sum(
            v.numel() for k, v in got.items() if "lora_" in k
        )
    else:
        assert changed and result["trainable_params"] == result["total_params"]
    assert result["peak_rss_mb"] is None or result["peak_rss_mb"] > 0


def test_sampling_uses_the_soft_prompt(ref_run, tiny_run, capsys):
    args = ["--prompt", "Trip: Anna went to the river.\nWhere:", "--temperature", "0",
            "--max-new-tokens", "5"]  # fmt: skip
    own = cli(capsys, "sample", "--run", ref_run, *args)
    via_file = cli(capsys, "sample", "--run", tiny_run, "--soft-prompt",
                   ref_run / "soft_prompt.safetensors", *args)  # fmt: skip
    assert own.returncode == 0 and via_file.returncode == 0, via_file.stderr
    assert own.stdout == via_file.stdout  # the run's soft prompt = the file on its parent
    pt = load_run(ref_run)
    assert pt.model.tok_emb.n_virtual == 5


def test_bad_input_is_one_line_and_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--lora", "r=2",
            "--full")  # fmt: skip
    assert_clean_error(r, "full", "drop --lora")
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--n-before", "0",
            "--n-after", "0")  # fmt: skip
    assert_clean_error(r, "nothing to train")
    r = cli(capsys, "prompt-tune", "--out", out, "--task", "tiny")
    assert_clean_error(r, "init_from")
    task = tiny_task()
    task.label_text = lambda label: "" if label == "land" else " cats"
    monkeypatch.setattr("lmforge.stages.prompt_tune.load_task_of", lambda cfg: task)
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT)
    assert_clean_error(r, "label 'land'", "tokenizes to nothing")
    use_tiny_task(monkeypatch)
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--seq-len", "12")
    assert_clean_error(r, "train example 0", "limit of 13")
    assert not out.exists()


def test_a_task_file_through_load_task(tiny_run, tmp_path, capsys):
    """No stand-in: `--task spec.yaml` goes through `lmforge.prompting.tasks.load_task`."""
    task = tiny_task(12, 4)
    rows = [{"text": ex.fields["text"], "label": ex.label} for ex in task.train]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rows = [{"text": ex.fields["text"], "label": ex.label} for ex in task.test]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "places.yaml"
    spec.write_text(json.dumps({
        "labels": ["water", "land"], "label_words": {"water": "cats", "land": "mill"},
        "train": "train.jsonl", "test": "test.jsonl",
        "format": {"template": "Trip: {text}\nWhere:"},
    }))  # fmt: skip
    out = tmp_path / "run"
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", out, *PT, "--task", spec,
            "--max-steps", "3", "--init", "labels")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ck = open_checkpoint(latest_checkpoint(out))
    assert ck.state["soft_prompt"] == {"n_before": 3, "n_after": 2, "init": "labels"}
    assert "task places" in (out / "report.md").read_text()


@pytest.mark.slow
def test_two_processes_prompt_tune_like_one(tiny_run, tmp_path, capsys):
    """torchrun (gloo): 2 processes x batch 2 follow the curve of 1 process x batch 4."""
    import os

    task = tiny_task(16, 4)
    for split in ("train", "test"):
        rows = [{"text": ex.fields["text"], "label": ex.label} for ex in getattr(task, split)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "places.json"
    spec.write_text(json.dumps({"labels": ["water", "land"], "train": "train.jsonl",
                                "test": "test.jsonl", "format": {"template": "Trip: {text}"}}))  # fmt: skip
    flags = [*PT, "--task", str(spec), *STEPS]
    one = tmp_path / "one"
    r = cli(capsys, "prompt-tune", "--from", tiny_run, "--out", one, *flags)
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "prompt-tune", "--from", str(tiny_run), "--out", str(two), *flags,
           "--batch-size", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = train_losses(two), train_losses(one)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 7))
    assert [x for _, x in a] == pytest.approx([x for _, x in b], rel=1e-4)
    assert (two / "soft_prompt.safetensors").is_file()
