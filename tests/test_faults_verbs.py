"""The fault-injection suite: every verb that writes, against every way its output can go wrong.

For each writing verb: `--out` is a file (or a folder where a file goes), `--out`
holds someone else's files, `--out` sits inside an input, the output folder is
read-only, the disk is full, and `--out` holds this verb's own earlier output
without `--force`. Each must end with one line on stderr, exit 2, every
pre-existing file byte-identical and no temporary file left behind. The
training-stage cases (the lock, SIGINT, SIGKILL) are at the end.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_clean_error
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    RUN_STEPS,
    TINY,
    assert_same_weights,
    cli,
    pretrain_proc,
    tiny_run,
    tiny_shards,
)

from lmforge.outputs import RunLock

KILLABLE = Path(__file__).with_name("_killable.py")


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def inputs(tiny_shards, tiny_run, tmp_path_factory) -> dict[str, Path]:
    """One of each input a writing verb reads, in a folder of its own."""
    root = tmp_path_factory.mktemp("fault_inputs")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(tiny_shards.parent / "corpus.txt", corpus / "a.txt")
    shutil.copytree(tiny_shards.parent / "tok", root / "tok")
    shutil.copytree(tiny_run, root / "run")
    from lmforge.export.hf import export_run

    export_run(root / "run", root / "hf")
    from lmforge.config import build_config
    from lmforge.ngram.config import NgramConfig
    from lmforge.ngram.files import save_model
    from lmforge.ngram.train import train_ngram

    model = train_ngram(build_config(NgramConfig, overrides={"order": 2}), [corpus / "a.txt"])
    save_model(model, root / "model.npz")
    record = {
        "messages": [{"role": "user", "content": "What is 2 + 3?"},
                     {"role": "assistant", "content": "5"}],
        "task": "arithmetic", "difficulty": 1, "answer": "5", "answer_type": "number",
    }  # fmt: skip
    (root / "tasks.jsonl").write_text(json.dumps(record) + "\n")
    rows = [{"text": "Anna saw cats.", "label": "yes"}, {"text": "Boris went home.", "label": "no"}]
    (root / "fewshot").mkdir()
    (root / "fewshot" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    (root / "fewshot" / "task.yaml").write_text(json.dumps({
        "labels": ["yes", "no"], "train": "rows.jsonl", "test": "rows.jsonl",
        "format": {"template": "Text: {text}\nCats:"},
    }))  # fmt: skip
    lines = [{"text": f"Al met B{i}. Al saw B{i}"} for i in range(6)]
    (root / "lambada.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    from conftest import run_lmforge_inprocess
    from world_helpers import build_tiny_world

    build_tiny_world(root / "world")
    r = run_lmforge_inprocess("pretrain", *TINY, "--from", root / "run", "--data", tiny_shards,
                              "--out", root / "lora_run", "--max-steps", "1",
                              "--lora", "r=2,targets=q,v")  # fmt: skip
    assert r.returncode == 0, r.stderr
    pairs = [{"prompt": "What is 2 + 3?", "chosen": "5", "rejected": r, "rating": "better"}
             for r in ("6", "I don't know.", "4")]  # fmt: skip
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    r = run_lmforge_inprocess("reward", "train", "--from", root / "run", "--data",
                              root / "pairs.jsonl", "--out", root / "rm", "--max-steps", "1",
                              "--batch-size", "2", "--threads", "1", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return {
        "pairs": root / "pairs.jsonl",
        "rm": root / "rm",
        "lambada": root / "lambada.jsonl",
        "world": root / "world",
        "lora_run": root / "lora_run",
        "fewshot_task": root / "fewshot" / "task.yaml",
        "corpus_file": corpus / "a.txt",
        "tasks": root / "tasks.jsonl",
        "root": root,
        "corpus": corpus,
        "tok": root / "tok",
        "shards": tiny_shards,
        "run": root / "run",
        "hf": root / "hf",
        "model": root / "model.npz",
    }


# verb -> (args with OUT standing for --out, the output is a file, an input to nest --out in)
VERBS = {
    "tokenizer train": (
        ["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--input", "{corpus}"],
        False,
        "corpus",
    ),
    "data prepare": (
        ["data", "prepare", "--tokenizer", "{tok}", "--input", "{corpus}", "--val-fraction", "0.1"],
        False,
        "tok",
    ),  # fmt: skip
    "ngram train": (["ngram", "train", "--input", "{corpus}", "--order", "2"], True, "corpus"),
    "ngram export": (["ngram", "export", "--model", "{model}"], True, "model"),
    "pretrain": ([*TINY, "--data", "{shards}", "--max-steps", "2"], False, "shards"),
    "export hf": (["export", "hf", "--run", "{run}"], False, "run"),
    "import hf": (["import", "hf", "--src", "{hf}"], False, "hf"),
    "eval lineage": (["eval", "lineage", "--corpus", "{corpus_file}"], False, "corpus_file"),
    "eval tasks": (
        ["eval", "tasks", "--run", "{run}", "--data", "{tasks}", "--max-new-tokens", "2"],
        False,
        "run",
    ),
    "fewshot": (
        ["fewshot", "--run", "{run}", "--task", "{fewshot_task}", "--k", "1", "--seeds", "1"],
        False,
        "run",
    ),
    "prompt-tune": (
        (
            "prompt-tune --from {run} --task {fewshot_task} --max-steps 2 --batch-size 2 "
            "--threads 1 --dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "export peft": (["export", "peft", "--run", "{lora_run}"], False, "lora_run"),
    "eval cloze": (
        "eval cloze --run {run} --lambada {lambada} --k 0 1 --seeds 1 --max-new-tokens 2".split(),
        False,
        "run",
    ),
    "eval ladder": (
        (
            "eval ladder --world {world} --sizes 1x16x2 --steps-per-model 2 --k 0 1 --seeds 1 "
            "--limit 2 --vocab-size 300 --batch-size 2 --evals trivia"
        ).split(),
        False,
        "world",
    ),
    "sft": (
        (
            "sft --from {run} --data {tasks} --max-steps 2 --batch-size 2 --seq-len 32 "
            "--threads 1 --dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "reward train": (
        (
            "reward train --from {run} --data {pairs} --max-steps 2 --batch-size 2 "
            "--threads 1 --dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "dpo": (
        "dpo --from {run} --data {pairs} --max-steps 2 --batch-size 2 --threads 1 --quiet".split(),
        False,
        "run",
    ),
    "rs": (
        (
            "rs --from {run} --prompts {tasks} --n 2 --iterations 1 --steps-per-iteration 1 "
            "--min-reward none --max-new-tokens 4 --batch-size 2 --seq-len 32 --threads 1 "
            "--dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "ppo": (
        (
            "ppo --from {run} --prompts {tasks} --episodes 2 --iterations 1 --ppo-epochs 1 "
            "--minibatches 1 --max-new-tokens 4 --threads 1 --dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "grpo": (
        (
            "grpo --from {run} --prompts {tasks} --episodes 2 --n 2 --iterations 1 "
            "--max-new-tokens 4 --threads 1 --dtype fp32 --quiet"
        ).split(),
        False,
        "run",
    ),
    "eval reward": ("eval reward --run {rm} --data {pairs}".split(), False, "rm"),
    "reward score": ("reward score --run {rm} --data {pairs}".split(), True, "rm"),
}
SLOW_VERBS = {"eval lineage", "eval ladder"}  # their successful run is too long for the "ours" case


def argv(verb: str, inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    args, _, _ = VERBS[verb]
    head = ["pretrain"] if verb == "pretrain" else []
    return [*head, *(a.format(**inputs) for a in args), "--out", str(out), *extra]


def out_name(verb: str) -> str:
    return {"ngram train": "m.npz", "ngram export": "m.arpa"}.get(verb, "out")


@pytest.fixture
def work(tmp_path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def check_nothing_changed(inputs, before, work, work_before=None):
    assert files(inputs["root"]) == before
    assert files(inputs["shards"]) == before["__shards"]
    left = files(work)
    assert left == (work_before or {}), f"left behind: {sorted(set(left) - set(work_before or {}))}"


def snapshot(inputs):
    before = files(inputs["root"])
    before["__shards"] = files(inputs["shards"])
    return before


def _check(before):
    return {k: v for k, v in before.items() if k != "__shards"}


@pytest.mark.parametrize("verb", list(VERBS))
def test_out_is_the_wrong_kind(verb, inputs, work, capsys):
    _, is_file, _ = VERBS[verb]
    out = work / out_name(verb)
    if is_file:
        out.mkdir()  # a folder where the file goes
        (out / "keep.txt").write_text("mine")
    else:
        out.write_text("mine")  # a file where the folder goes
    before, mine = snapshot(inputs), files(work)
    r = cli(capsys, *argv(verb, inputs, out, "--force"))
    assert_clean_error(r, str(out))
    assert files(work) == mine
    assert files(inputs["root"]) == _check(before)


@pytest.mark.parametrize("verb", [v for v, (_, is_file, _) in VERBS.items() if not is_file])
def test_out_holding_other_files_is_refused_even_with_force(verb, inputs, work, capsys):
    out = work / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    mine = files(work)
    r = cli(capsys, *argv(verb, inputs, out, "--force"))
    assert_clean_error(r, str(out), "replaces only what it wrote")
    assert files(work) == mine


@pytest.mark.parametrize("verb", list(VERBS))
def test_out_inside_an_input_is_refused_even_with_force(verb, inputs, capsys):
    _, is_file, nest_in = VERBS[verb]
    target = inputs[nest_in]
    # The input itself (a file), or a folder inside the input folder.
    out = target if (is_file or target.is_file()) else target / "nested"
    before = snapshot(inputs)
    r = cli(capsys, *argv(verb, inputs, out, "--force"))
    assert_clean_error(r, "--out", "even with --force")
    assert files(inputs["root"]) == _check(before)
    assert files(inputs["shards"]) == before["__shards"]


def test_out_containing_the_run_is_refused(inputs, capsys):
    """`export hf --run R --out PARENT --force` would delete the run."""
    before = files(inputs["root"])
    r = cli(capsys, "export", "hf", "--run", inputs["run"], "--out", inputs["root"], "--force")
    assert_clean_error(r, "contains the run")
    assert files(inputs["root"]) == before


class _Denied:
    """Make every write under `root` fail with `code` (EACCES: read-only; ENOSPC: disk full)."""

    def __init__(self, monkeypatch, root: Path, code: int):
        self.root, self.code = root.resolve(), code
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
        real_replace = os.replace

        def inside(p) -> bool:
            try:
                p = Path(os.fsdecode(p)).resolve()
            except (TypeError, ValueError):
                return False
            return p == self.root or self.root in p.parents

        def fail(p):
            raise OSError(self.code, os.strerror(self.code), os.fsdecode(p))

        def open_(file, mode="r", *a, **kw):
            if isinstance(file, (str, bytes, os.PathLike)) and inside(file):
                if any(c in mode for c in "wax+"):
                    fail(file)
            return real_open(file, mode, *a, **kw)

        def os_open(path, flags, *a, **kw):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                fail(path)
            return real_os_open(path, flags, *a, **kw)

        def mkdir(path, *a, **kw):
            if code == errno.EACCES and inside(path):
                fail(path)
            return real_mkdir(path, *a, **kw)

        def replace(src, dst, *a, **kw):
            if inside(dst):
                fail(dst)
            return real_replace(src, dst, *a, **kw)

        for mod in (builtins, io):
            monkeypatch.setattr(mod, "open", open_)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("code, needle", [(errno.EACCES, "permission"), (errno.ENOSPC, "full")])
@pytest.mark.parametrize("verb", list(VERBS))
def test_read_only_and_full_disk_are_one_line(
    verb, code, needle, inputs, work, monkeypatch, capsys
):
    before = snapshot(inputs)
    _Denied(monkeypatch, work, code)
    r = cli(capsys, *argv(verb, inputs, work / out_name(verb)))
    monkeypatch.undo()
    assert_clean_error(r, needle)
    assert files(inputs["root"]) == _check(before)
    left = [p for p in work.rglob("*") if p.is_file()]
    assert left == [], f"left behind: {left}"


@pytest.mark.parametrize("verb", [v for v in VERBS if v not in SLOW_VERBS])
def test_own_output_is_replaced_only_with_force(verb, inputs, work, capsys):
    out = work / out_name(verb)
    r = cli(capsys, *argv(verb, inputs, out))
    assert r.returncode == 0, r.stderr
    made = files(work)
    r = cli(capsys, *argv(verb, inputs, out))
    assert_clean_error(r, "--force")
    assert files(work) == made
    if verb != "pretrain":  # a run is continued with --resume; --force starts it over
        r = cli(capsys, *argv(verb, inputs, out, "--force"))
        assert r.returncode == 0, r.stderr


# --- training stages: the lock, interrupts, kills ---------------------------------------


def test_a_second_writer_gets_one_line_with_the_holders_pid(inputs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(inputs["run"], run)
    with RunLock(run):
        before = files(run)
        r = cli(capsys, "pretrain", *TINY, "--data", inputs["shards"], "--out", run,
                "--resume", "--max-steps", "20")  # fmt: skip
    assert_clean_error(r, str(run), f"process {os.getpid()}")
    assert files(run) == before


def test_the_lock_dies_with_its_process(inputs, tmp_path, capsys):
    """A writer killed with SIGKILL leaves no stale lock: the next one proceeds."""
    run = tmp_path / "run"
    shutil.copytree(inputs["run"], run)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from lmforge.outputs import RunLock; import time\n"
         f"l = RunLock({str(run)!r}); l.acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    r = cli(capsys, "pretrain", *TINY, "--data", inputs["shards"], "--out", run, "--resume",
            "--max-steps", "13")  # fmt: skip
    assert_clean_error(r, f"process {holder.pid}")
    holder.kill()
    holder.wait()
    r = cli(capsys, "pretrain", *TINY, "--data", inputs["shards"], "--out", run, "--resume",
            "--max-steps", "13")  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_pretrain_into_a_folder_that_is_not_a_run_is_refused(inputs, work, capsys):
    (work / "notes.txt").write_text("mine")
    r = cli(capsys, *argv("pretrain", inputs, work))
    assert_clean_error(r, "not an lmforge run folder")
    assert files(work) == {"notes.txt": b"mine"}


def test_a_failed_new_run_leaves_no_folder(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli(capsys, *argv("pretrain", inputs, out, "--model.block-size", "1000000000"))
    assert_clean_error(r, "GiB", "block-size")
    assert not out.exists()


def test_too_big_for_memory_is_refused_before_allocating(inputs, tmp_path, capsys):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = cli(capsys, *argv("pretrain", inputs, tmp_path / "r", "--model.d-model", "65536",
                          "--model.n-layer", "64"))  # fmt: skip
    assert_clean_error(r, "needs about", "GiB")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, grown_mb


def _interrupted_run(inputs, out: Path, after: int, sig: int) -> subprocess.CompletedProcess:
    args = ["pretrain", *TINY, *RUN_STEPS, "--data", str(inputs["shards"]), "--out", str(out)]
    return subprocess.run(
        [sys.executable, str(KILLABLE), "--signal-after-step", str(after), "--signal", str(sig),
         "--", *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_an_interrupt_saves_a_checkpoint_and_resume_is_bitwise_equal(sig, inputs, tmp_path):
    out = tmp_path / "run"
    r = _interrupted_run(inputs, out, after=5, sig=sig)
    assert r.returncode == 130, r.stderr
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert "at step 6" in last and "--resume" in last and "step_6" in last, r.stderr
    assert (out / "checkpoints" / "step_6").is_dir()  # between save points 4 and 8
    r = pretrain_proc(*TINY, *RUN_STEPS, "--data", inputs["shards"], "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_12", inputs["run"] / "checkpoints" / "step_12")


def test_the_first_signal_sets_a_flag_and_the_second_quits_at_once():
    from lmforge.train.signals import StopSignals

    # What was installed before (default_int_handler, or SIG_IGN when the suite runs as a
    # background job of a shell without job control) must be what is there after.
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as s:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs at the next bytecode boundary
        assert s.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is before  # put back


# --- resumable verbs: `recipe` and `experiments` continue their own --out by design ----------
# (no --force case: rerunning them resumes or regenerates; their own tests cover that).

WORLD_ONLY = "stages:\n  - name: world\n    people: 20\n    places: 5\n    events: 6\n"


def _resumable_argv(verb: str, root: Path, out: Path) -> list[str]:
    if verb == "recipe":
        recipe = root / "recipe.yaml"
        recipe.write_text(WORLD_ONLY)
        return ["recipe", "--recipe", str(recipe), "--out", str(out)]
    return ["experiments", "run", "C1", "--quick", "--out", str(out)]


@pytest.mark.parametrize("verb", ["recipe", "experiments"])
def test_resumable_verbs_refuse_a_file_or_someone_elses_folder(verb, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("mine")
    r = cli(capsys, *_resumable_argv(verb, tmp_path, out))
    assert_clean_error(r, str(out), "not a folder")
    assert out.read_text() == "mine"
    out.unlink()
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    r = cli(capsys, *_resumable_argv(verb, tmp_path, out))
    assert_clean_error(r, str(out), "not made by")
    assert files(out) == {"thesis.tex": b"years of work"}


@pytest.mark.parametrize("code, needle", [(errno.EACCES, "permission"), (errno.ENOSPC, "full")])
@pytest.mark.parametrize("verb", ["recipe", "experiments"])
def test_resumable_verbs_on_a_read_only_or_full_disk_are_one_line(
    verb, code, needle, tmp_path, monkeypatch, capsys
):
    work = tmp_path / "work"
    work.mkdir()
    args = _resumable_argv(verb, tmp_path, work / "out")
    _Denied(monkeypatch, work, code)
    r = cli(capsys, *args)
    monkeypatch.undo()
    assert_clean_error(r, needle)
    assert [p for p in work.rglob("*") if p.is_file()] == []
