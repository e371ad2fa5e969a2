"""`{"prompt", "completion"}`: T0 / P3-style instruction data, one file per prompt template.

A completion's trailing `<|endoftext|>` is dropped. The file is named
`<task>_<template>.jsonl` (P3's layout, e.g. `ag_news_classify_question_first`,
`trec_fine_grained_ABBR`); task and template go into meta unless the record
names its own. The split is taken from P3's dataset names where the stem starts
with one, else from the sibling files: the task is the prefix shared by the most
files of the folder (the longest such prefix), so `ag_news_*` is "ag_news", not
"ag". The completion is the answer, scored by exact match (extractor "exact").
"""

from __future__ import annotations

from pathlib import Path

from ...tokenizers.chat import Conversation
from .fields import make_conversation, need_str, optional_str_meta
from .options import FileContext

END_OF_TEXT = "<|endoftext|>"

# P3 (bigscience/P3) dataset names: a file stem is `<one of these>_<template name>`.
P3_DATASETS = (
    "adversarial_qa_dbert", "adversarial_qa_dbidaf", "adversarial_qa_droberta", "ag_news",
    "ai2_arc_ARC_Challenge", "ai2_arc_ARC_Easy", "amazon_polarity", "anli", "app_reviews",
    "cnn_dailymail_3.0.0", "common_gen", "cos_e_v1.11", "cosmos_qa", "dbpedia_14", "dream",
    "duorc_ParaphraseRC", "duorc_SelfRC", "gigaword", "glue_mrpc", "glue_qqp", "hellaswag",
    "imdb", "kilt_tasks_hotpotqa", "multi_news", "openbookqa_main", "paws_labeled_final",
    "piqa", "qasc", "quail", "quarel", "quartz", "quoref", "race_high", "race_middle", "ropes",
    "rotten_tomatoes", "samsum", "sciq", "social_i_qa", "squad_v2", "story_cloze_2016",
    "super_glue_boolq", "super_glue_cb", "super_glue_copa", "super_glue_multirc",
    "super_glue_record", "super_glue_rte", "super_glue_wic", "super_glue_wsc.fixed", "trec",
    "trivia_qa_unfiltered", "web_questions", "wiki_bio", "wiki_hop_original", "wiki_qa",
    "winogrande_winogrande_debiased", "winogrande_winogrande_xl", "wiqa", "xsum",
    "yelp_review_full",
)  # fmt: skip


def _prefixes(stem: str) -> list[str]:
    """The prefixes of `stem` that end before an underscore, shortest first."""
    parts = stem.split("_")
    return ["_".join(parts[:i]) for i in range(1, len(parts))]


def split_task_template(stem: str, siblings: list[str] = ()) -> tuple[str, str]:
    """(task, template) of a `<task>_<template>` file stem (see the module docstring)."""
    known = [d for d in P3_DATASETS if stem.startswith(d + "_")]
    if known:
        task = max(known, key=len)
        return task, stem[len(task) + 1 :]
    candidates = _prefixes(stem)
    if not candidates:
        return stem, stem
    others = [s for s in siblings if s != stem]
    shared = [(sum(s.startswith(p + "_") for s in others), len(p), p) for p in candidates]
    best = max(shared)
    task = best[2] if best[0] > 0 else candidates[0]
    return task, stem[len(task) + 1 :]


def _task_template(ctx: FileContext) -> tuple[str, str]:
    if "task_template" not in ctx.cache:
        siblings = sorted(p.stem for p in Path(ctx.path).parent.glob("*.jsonl"))
        ctx.cache["task_template"] = split_task_template(Path(ctx.path).stem, siblings)
    return ctx.cache["task_template"]


def detect(obj: dict) -> bool:
    return "prompt" in obj and "completion" in obj


def convert(obj: dict, ctx: FileContext) -> list[Conversation]:
    prompt = need_str(obj, "prompt").strip()
    completion = need_str(obj, "completion").strip().removesuffix(END_OF_TEXT).strip()
    meta = {k: v for k, v in obj.items() if k not in ("prompt", "completion")}
    task, template = _task_template(ctx)
    meta.setdefault("task", task)
    meta.setdefault("template", template)
    optional_str_meta(meta, "task", "template")
    if completion:
        meta.update(answer=completion, answer_type="text", extractor="exact")
    turns = [("prompt", "user", prompt), ("completion", "assistant", completion)]
    return [make_conversation(turns, meta, what="completion")]
