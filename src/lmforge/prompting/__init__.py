"""lmforge.prompting: few-shot classification by prompting, label scoring and calibration.

* `tasks` (`load_task`, `ClassificationTask`, `Example`, `PromptFormat`), `formats`
  (the shipped formats), `task_files` (readers of the world's, the reference and
  user task files);
* `builder`: zero/one/few-shot prompts (`PromptBuilder`, `sample_demos`,
  `demos_for_labels`, `order_demos`, `permutations`, `take_test`);
* `scoring`: label log-probabilities with one prompt prefill shared by all labels
  (`score_continuations`, `score_labels`, `score_prompts`), and generated answers
  (`generate_answers`);
* `calibration`: contextual calibration and the fitted affine map;
* `metrics`: accuracy, macro-F1, predicted-label shares, confusion counts;
* `evaluate`: one draw (`evaluate_demos`) and the sweep `lmforge fewshot` runs
  (`run_fewshot`); `fewshot_run`: the verb (files, table, plots).

Submodules are imported on use (``from lmforge.prompting.builder import ...``), so
importing the package loads no torch.
"""
