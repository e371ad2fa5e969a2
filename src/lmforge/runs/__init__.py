"""lmforge.runs: the run-folder layout, checkpoints, and `load_run` (one way to open a run)."""

from .layout import RunLayout
from .load import Run, find_checkpoint, load_run, load_tokenizer, parent_record, read_run_config

__all__ = [
    "Run",
    "RunLayout",
    "find_checkpoint",
    "load_run",
    "load_tokenizer",
    "parent_record",
    "read_run_config",
]
