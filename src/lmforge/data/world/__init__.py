"""lmforge's built-in synthetic world: pretraining text, tasks, checkers, dialogues, preferences.

    from lmforge.data.world import WorldConfig, build_world, check, FAMILIES
    manifest = build_world(WorldConfig(out="world", seed=0, size="small"))
    check(example, "Answer: 42")  # 1.0 or 0.0
    check_graded(example, "umm 41??")  # partial credit in [0, 1]

See docs/world.md for the files and formats.
"""

from .build import build_world
from .checkers import check, check_answer, extract_answer
from .config import SIZES, WorldConfig
from .graded import check_graded
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES, TaskFamily

__all__ = [
    "DEFAULT_HELDOUT_TASKS",
    "FAMILIES",
    "SIZES",
    "TaskFamily",
    "WorldConfig",
    "build_world",
    "check",
    "check_answer",
    "check_graded",
    "extract_answer",
]
