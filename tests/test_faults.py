"""Nothing lost, nothing overwritten: a finished run's --resume, OS errors, bad config files.

(The first cases of issue #10's fault-injection suite; each asserts one line, exit 2,
and every pre-existing file byte-identical.)
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from conftest import assert_clean_error
from test_pretrain_helpers import cli, tiny_run, tiny_shards  # noqa: F401 (fixtures)

from lmforge.cli.main import os_error_line


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (to compare before and after)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_resume_of_a_finished_run_says_so_and_writes_nothing(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    r = cli(capsys, "pretrain", "--out", run, "--resume")
    assert r.returncode == 0, r.stderr
    assert "is complete" in r.stdout and "--max-steps" in r.stdout
    assert snapshot(run) == before  # report.md, metrics, checkpoints: untouched


def test_read_only_out_is_one_line(tiny_shards, tmp_path, capsys, monkeypatch):
    """A folder the process may not write (simulated: root ignores permission bits)."""
    ro = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if ro in self.parents or self == ro:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    r = cli(capsys, "pretrain", "--data", tiny_shards, "--out", ro / "run", "--max-steps", "1",
            "--preset", "tiny", "--seq-len", "32", "--quiet")  # fmt: skip
    assert_clean_error(r, str(ro), "permission")


def test_out_that_is_a_file_is_one_line(tiny_shards, tmp_path, capsys):
    f = tmp_path / "afile.txt"
    f.write_text("mine")
    r = cli(capsys, "pretrain", "--data", tiny_shards, "--out", f, "--max-steps", "1",
            "--preset", "tiny", "--seq-len", "32", "--quiet")  # fmt: skip
    assert_clean_error(r, "afile.txt")
    assert f.read_text() == "mine"


@pytest.mark.parametrize(
    "code, needle",
    [
        (errno.ENOSPC, "disk is full"),
        (errno.EACCES, "permission"),
        (errno.EROFS, "read-only"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOTDIR, "not a folder"),
        (errno.EEXIST, "already exists"),
    ],
)
def test_os_errors_become_a_line_naming_the_path(code, needle):
    line = os_error_line(OSError(code, os.strerror(code), "/data/runs/x/step_4.tmp"))
    assert line.startswith("/data/runs/x/step_4.tmp: ") and needle in line


def test_a_full_disk_during_a_verb_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    """A write that raises ENOSPC (as a full disk does) ends the verb with one line."""
    import lmforge.data.world.build as build

    def full(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(build, "_write_jsonl", full)
    r = cli(capsys, "world", "--out", tmp_path / "w", "--size", "small", "--seed", "0",
            "--pretrain-chars", "20000", "--quiet")  # fmt: skip
    assert_clean_error(r, "disk is full")


@pytest.mark.parametrize(
    "data, needle",
    [
        ("max_steps: 3\n".encode("utf-16"), "UTF-16"),
        ("max_steps: 3\nnote: caf\xe9\n".encode("latin-1"), "cp1252"),
        (b"\x00\x01\x02binary", "binary"),
        (b"max_steps: [3\n", "not valid YAML"),
    ],
)
def test_bad_config_files_are_one_line(tiny_shards, tmp_path, capsys, data, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(data)
    r = cli(capsys, "pretrain", "--config", cfg, "--data", tiny_shards, "--out", tmp_path / "r")
    assert_clean_error(r, "bad.yaml", needle)
    assert not (tmp_path / "r").exists()


def test_sample_with_a_prompt_over_the_context_prints_only_the_error(tiny_run, capsys):
    r = cli(capsys, "sample", "--run", tiny_run, "--prompt", "Anna went to the river. " * 40)
    assert_clean_error(r, "context")
    assert r.stdout == ""  # the prompt is not echoed before the error
