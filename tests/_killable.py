"""`python -m lmforge ARGS` in this process, killed by a real SIGKILL at a chosen point.

    python tests/_killable.py --after-step 6 -- pretrain --out RUN ...
    python tests/_killable.py --in-checkpoint 8 -- pretrain --out RUN --resume

The switches live here, in test code, not in lmforge:

* `--after-step N` adds a loop hook (the public `train(..., hooks=)`) to every
  training run of the process; its `before_step` of step N+1 sends SIGKILL, i.e.
  right after step N, its evaluation and its checkpoint (when one was due).
* `--signal-after-step N [--signal SIG]` sends the process SIGINT (or SIG) before
  step N+1, as a Ctrl-C would: the loop saves at the end of step N+1 and exits 130.
* `--in-checkpoint N` wraps `torch.save` so that the process kills itself when
  it is about to write `step_N.tmp/optimizer.pt`: the checkpoint folder holds
  model.safetensors and nothing else, as after a crash half-way through the write.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfterStep:
    """A loop hook that kills its process before step `n + 1` starts."""

    def __init__(self, n: int):
        self.n = n

    def before_step(self, loop) -> None:
        if loop.step == self.n:
            die()


def kill_after_step(n: int) -> None:
    """Every `lmforge.train.loop.train` call of this process gets a KillAfterStep(n) hook."""
    add_hook(KillAfterStep(n))


class SignalAfterStep:
    """A loop hook that sends its process `sig` before step `n + 1` starts."""

    def __init__(self, n: int, sig: int):
        self.n, self.sig = n, sig

    def before_step(self, loop) -> None:
        if loop.step == self.n:
            os.kill(os.getpid(), self.sig)


def add_hook(hook) -> None:
    """Every `lmforge.train.loop.train` call of this process gets `hook`."""
    import lmforge.train.loop as loop

    original = loop.train

    def train(*args, hooks=(), **kw):
        return original(*args, hooks=[*hooks, hook], **kw)

    loop.train = train
    # Stages bind `train` when they are imported (after this patch); one imported
    # before it is re-pointed too.
    for name, mod in list(sys.modules.items()):
        if name.startswith("lmforge.") and getattr(mod, "train", None) is original:
            mod.train = train


def kill_in_checkpoint(n: int) -> None:
    """SIGKILL when `torch.save` is about to write step_<n>.tmp/optimizer.pt."""
    import torch

    original = torch.save

    def save(obj, f, *args, **kw):
        if isinstance(f, (str, os.PathLike)):
            p = Path(f)
            if p.name == "optimizer.pt" and p.parent.name == f"step_{n}.tmp":
                die()
        return original(obj, f, *args, **kw)

    torch.save = save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--after-step", type=int)
    ap.add_argument("--in-checkpoint", type=int)
    ap.add_argument("--signal-after-step", type=int)
    ap.add_argument("--signal", type=int, default=int(signal.SIGINT))
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if ns.after_step is not None:
        kill_after_step(ns.after_step)
    if ns.signal_after_step is not None:
        add_hook(SignalAfterStep(ns.signal_after_step, ns.signal))
    if ns.in_checkpoint is not None:
        kill_in_checkpoint(ns.in_checkpoint)
    from lmforge.cli.main import main as lmforge_main

    lmforge_main(args)


if __name__ == "__main__":
    main()
