"""`lmforge eval tasks` as a function: open a run, evaluate task files, write the folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import pick_device
from .tasks import CHECKERS, TaskEvalConfig, TaskEvalResult, evaluate_tasks
from .tasks_data import load_task_files, parse_data_spec


def run_task_eval(
    run: str | Path,
    data: Sequence[str | Path],
    cfg: TaskEvalConfig | None = None,
    *,
    step: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
) -> tuple[TaskEvalResult, dict[str, Any]]:
    """Evaluate RUN's model (latest checkpoint, or `step`) on the task files `data`.

    Each `data` item is ``FILE`` or ``FILE=LABEL`` (its split; default ``seen``, or
    ``heldout_templates`` / ``heldout_task`` for the world's files of those names). With `out`, writes the evaluation
    folder (`tasks_report.write_task_eval`), checked against lmforge's output policy
    before anything heavy is read. Returns the result and what was evaluated (``about``:
    its name (``RUN@STEP``), the run and the data files, as results.json records them).
    """
    from ..runs import load_run
    from .tasks_report import check_out_folder, write_task_eval

    cfg = cfg or TaskEvalConfig()
    specs = [parse_data_spec(str(d)) for d in data]
    if out is not None:
        inputs = [("run", run), *(("data file", p) for p, _ in specs)]
        check_out_folder(out, force=force, inputs=inputs)
    records = load_task_files(specs, checkers=list(CHECKERS))
    opened = load_run(run, step, device=pick_device(device), need="decoder")
    result = evaluate_tasks(opened.model, opened.tokenizer, records, cfg)
    evaluated = [pr.where for pr in result.predictions]
    about = {
        "name": f"{Path(run).resolve().name}@{opened.step}",
        "run": {
            "path": str(Path(run).resolve()),
            "step": opened.step,
            "stage": opened.stage,
            "arch": opened.arch,
        },
        "data": [
            {
                "path": str(p),
                "split": s,
                "records": sum(r.file == str(p) for r in records),
                "evaluated": sum(w.rsplit(":", 1)[0] == str(p) for w in evaluated),
            }
            for p, s in specs
        ],
    }
    if out is not None:
        write_task_eval(out, result, about=about, name=about["name"])
    return result, about
