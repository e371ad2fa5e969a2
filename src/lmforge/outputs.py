"""The one policy for what a verb may write over, and the run-folder lock.

Every verb that writes (`tokenizer train`, `world`, `data prepare`, `ngram
train/export`, `pretrain` and every later stage, `export hf`, `import hf`,
`eval ... --out`) checks its `--out` with `check_out` before reading anything heavy:

* `--out` never equals, contains or sits inside one of the verb's inputs (the
  run, the source, the data): refused even with `--force`, because replacing
  the output would delete the input.
* An existing output that this verb did not make (a folder with other files, a
  file where a folder goes) is refused even with `--force`: lmforge deletes
  only what it wrote.
* An existing output that this verb made is replaced only with `--force`, and
  then only once the new one is complete (temporary folder + rename).

Training stages write into their run folder in place (checkpoints, metrics), so
they take `RunLock` on it: an OS file lock (`flock`) on `RUN/.lock`, released
by the kernel when the process dies, so a crash never leaves a stale lock. A
second writer gets one line naming the holder's PID.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .common import LmforgeError

LOCK_FILE = ".lock"


def _resolved(p: str | Path) -> Path:
    return Path(p).expanduser().resolve()


def check_not_overlapping(out: str | Path, inputs: Iterable[tuple[str, str | Path]]) -> None:
    """Refuse an `out` equal to, inside or containing any input (`(name, path)` pairs)."""
    o = _resolved(out)
    for name, path in inputs:
        if path is None or str(path) == "":
            continue
        i = _resolved(path)
        if o == i:
            why = f"is the {name} itself"
        elif i in o.parents:
            why = f"is inside the {name} {path}"
        elif o in i.parents:
            why = f"contains the {name} {path}"
        else:
            continue
        raise LmforgeError(
            f"--out {out}: {why}; writing there would damage it, even with --force; "
            "choose an --out outside it"
        )


def has_results_of_kind(path: str | Path, kind: str, file: str = "results.json") -> bool:
    """Does `path` hold a `file` (JSON) whose "kind" is `kind`: a folder that verb wrote?"""
    import json

    try:
        data = json.loads((Path(path) / file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == kind


def check_out(
    out: str | Path,
    *,
    force: bool,
    made_here: Callable[[Path], bool] | None,
    what: str,
    inputs: Iterable[tuple[str, str | Path]] = (),
    is_file: bool = False,
) -> Path:
    """Check `--out` against the policy above; returns it as a Path. Changes nothing.

    `made_here(path)` says whether an existing, non-empty output was made by this
    verb (e.g. a folder holding tokenizer.json); None means it cannot be told, so
    `--force` alone decides. `what` names the output in messages ("tokenizer").
    `is_file`: the output is one file rather than a folder.
    """
    out = Path(out)
    check_not_overlapping(out, inputs)
    if not out.exists() and not out.is_symlink():
        return out
    if is_file:
        if out.is_dir():
            raise LmforgeError(f"--out {out}: is a folder; give a file path for the {what}")
        ours = True if made_here is None else made_here(out)
    else:
        if not out.is_dir():
            raise LmforgeError(f"--out {out}: exists and is not a folder; choose another --out")
        if not any(out.iterdir()):
            return out
        ours = True if made_here is None else made_here(out)
    if not ours:
        raise LmforgeError(
            f"--out {out}: exists and does not hold a {what}; lmforge replaces only what it "
            "wrote, even with --force; choose a new or empty --out"
        )
    if not force:
        raise LmforgeError(f"--out {out}: already holds a {what}; pass --force to replace it")
    return out


class RunLock:
    """An exclusive OS lock on a run folder for one writer process (`with RunLock(run):`).

    Only the main process of a torchrun group locks (the others never write the
    folder); `enabled=False` skips it. The folder is created if needed; the lock
    file records the holder's PID for the message the next writer gets.
    """

    def __init__(self, folder: str | Path, *, enabled: bool = True):
        self.folder = Path(folder)
        self.enabled = enabled
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if not self.enabled:  # a non-main torchrun rank: it never writes the folder
            return
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_pid(path)
            who = f"process {holder}" if holder else "another process"
            raise LmforgeError(
                f"{self.folder}: is being written by {who} (lock {path}); wait for it to "
                "finish or stop it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip() or 0) or None
    except (OSError, ValueError):
        return None
