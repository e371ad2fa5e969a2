"""The run-folder layout: every name inside a run folder, in one place.

```
runs/<name>/
  config.yaml                     the stage config (with its model section)
  tokenizer/                      tokenizer.json + lmforge.json
  checkpoints/step_<N>/           model.safetensors, optimizer.pt, trainer_state.json, ...
  latest                          the folder name of the newest complete checkpoint
  metrics.jsonl, tb/, plots/*.png, report.md
  .lock                           the writer's OS lock (lmforge.outputs.RunLock)
```

Stages, exporters and verbs ask `RunLayout` for paths instead of spelling the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
METRICS_FILE = "metrics.jsonl"
REPORT_FILE = "report.md"
TB_DIR = "tb"
PLOTS_DIR = "plots"
SOFT_PROMPT_FILE = "soft_prompt.safetensors"
RESULT_FILE = "result.json"  # a stage's headline numbers (prompt-tune)
LOCK_NAME = ".lock"
REFERENCE_LOGPS_FILE = "reference_logps.safetensors"  # DPO's precomputed reference
RS_DIR = "rs"  # rejection sampling's rounds (lmforge rs)
PPO_DIR = "ppo"  # PPO / GRPO: rollout buffers, samples, the per-iteration table
REFERENCE_FILE = "reference.safetensors"  # PPO / GRPO: the frozen reference policy
# Every name a stage writes at the top of a run folder: a folder holding anything
# else is not a run lmforge made, and is never replaced (lmforge.outputs).
RUN_NAMES = frozenset(
    {
        CONFIG_FILE,
        TOKENIZER_DIR,
        CHECKPOINTS_DIR,
        LATEST_FILE,
        LATEST_FILE + ".tmp",
        METRICS_FILE,
        REPORT_FILE,
        REPORT_FILE + ".tmp",
        TB_DIR,
        PLOTS_DIR,
        LOCK_NAME,
        REFERENCE_LOGPS_FILE,
        RS_DIR,
        PPO_DIR,
        REFERENCE_FILE,
        REFERENCE_FILE + ".tmp",
        SOFT_PROMPT_FILE,  # prompt-tune runs: the trained soft tokens
        SOFT_PROMPT_FILE + ".tmp",
        RESULT_FILE,
        RESULT_FILE + ".tmp",
    }
)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (nothing is created or checked here)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def tokenizer(self) -> Path:
        return self.root / TOKENIZER_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def latest(self) -> Path:
        return self.root / LATEST_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def tb(self) -> Path:
        return self.root / TB_DIR

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    def step(self, step: int) -> Path:
        """The folder of checkpoint `step`."""
        return self.checkpoints / f"step_{step}"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    def looks_like_run(self) -> bool:
        """True when the folder has the marks of a run (checkpoints/ or latest)."""
        return self.checkpoints.is_dir() or self.latest.is_file()

    def made_by_lmforge(self) -> bool:
        """True when every entry is a run-folder name and the config or a checkpoint is there."""
        names = {p.name for p in self.root.iterdir()}
        marked = CONFIG_FILE in names or self.looks_like_run()
        return marked and names <= RUN_NAMES

    def clear(self) -> None:
        """Delete everything a stage wrote here (not the lock): `--force` starts over."""
        import shutil

        for p in self.root.iterdir():
            if p.name in RUN_NAMES and p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
