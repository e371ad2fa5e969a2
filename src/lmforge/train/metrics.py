"""Run metrics: `metrics.jsonl` (one object per logged step), TensorBoard events, plots.

Only the main process writes. On resume, records past the checkpoint's step
(written by the run that was killed) are dropped, so the file and the curves
read as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a torn last line from a crash is ignored)."""
    p = Path(path)
    out: list[dict[str, Any]] = []
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out


class MetricsLogger:
    """Appends records to metrics.jsonl and TensorBoard; redraws plots on request."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, resume_step: int = 0):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / METRICS_FILE
        kept = [r for r in read_metrics(path) if r["step"] <= resume_step] if resume_step else []
        # Rewrite rather than append: drops what a killed run logged after its checkpoint.
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self.records = kept
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / TB_DIR), purge_step=resume_step or None)
        except ImportError:  # tensorboard is a dependency, but a stripped install still trains
            self._tb = None

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; `record["step"]` is required, non-finite floats become null."""
        if not self.enabled:
            return
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self.records.append(clean)
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(record["step"])
            for k, v in clean.items():
                if k != "step" and isinstance(v, (int, float)) and v is not None:
                    self._tb.add_scalar(_tb_tag(k), v, step)

    def plot(self) -> list[Path]:
        """Redraw plots/loss.png (and plots/lr.png); returns the files written."""
        if not self.enabled or not self.records:
            return []
        from .plots import plot_training_curves

        return plot_training_curves(self.records, self.run_dir / "plots")

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tb_tag(key: str) -> str:
    if key.startswith("val_"):
        return "val/" + key[4:]
    return "train/" + key
