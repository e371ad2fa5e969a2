"""The run-folder layout: every name inside a run folder, in one place.

```
runs/<name>/
  config.yaml                     the stage config (with its model section)
  tokenizer/                      tokenizer.json + lmforge.json
  checkpoints/step_<N>/           model.safetensors, optimizer.pt, trainer_state.json, ...
  latest                          the folder name of the newest complete checkpoint
  metrics.jsonl, tb/, plots/*.png, report.md
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

    def looks_like_run(self) -> bool:
        """True when the folder has the marks of a run (checkpoints/ or latest)."""
        return self.checkpoints.is_dir() or self.latest.is_file()
