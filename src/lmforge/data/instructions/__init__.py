"""Instruction data: every file format as one Conversation type, and FLAN / T0-style mixtures.

    from lmforge.data.instructions import read_instructions, load_mixture, score
    result = read_instructions("world/instructions/train.jsonl")    # ReadResult
    result.conversations[0].meta["task"]                             # "reversing"
    mix = load_mixture("mix.yaml")                                   # Mixture
    score(mix.heldout[0].meta, "... Answer: 42")                     # 1.0 or 0.0

Formats (detected per file from its first valid record, or forced with `fmt=`):

| fmt | a record | read as |
|---|---|---|
| messages | `{"messages": [{"role", "content"}, ...], ...}` | as is; other keys go into meta (world instructions and dialogues: task, template, answer, ...) |
| prompt_completion | `{"prompt", "completion"}` | user, assistant; `<\\|endoftext\\|>` dropped; task and template from the file name (`ag_news_classify.jsonl`) |
| sharegpt | `{"conversations": [{"from": "human"\\|"gpt"\\|"system", "value"}]}` | a JSON array file or JSONL |
| alpaca | `{"instruction", "input", "output"}` (input optional) | instruction, blank line, input; output |
| self_instruct | `{"instruction", "instances": [{"input", "output"}], "name"}` | one conversation per instance |
| gsm8k | `{"question", "answer"}`, answer ending in `#### n` | CoT (steps, `#### n`) or direct (n); `<<a*b=c>>` removed or kept |

Files are streamed (a JSONL file line by line, a JSON array element by
element). A bad record raises LmforgeError naming `file:line` and the field, or
is counted and skipped with `skip_bad_lines`.

Where the reference data in `../shared/data/` comes from (see its README;
lmforge ships none of it, tests read a few lines and skip without it):

* `instructions/t0_templates/`: prompts of P3, the T0 training mixture (Sanh et
  al., 2021; bigscience/P3 on the Hugging Face Hub, Apache-2.0), 72 templates of
  8 datasets exported as `<task>_<template>.jsonl`; the 18 `trec` files are
  empty or have empty completions and are skipped with `skip_bad_lines`;
* `instructions/self_instruct_seed_tasks.jsonl`: the 175 human-written seed
  tasks of Self-Instruct (Wang et al., 2022; yizhongw/self-instruct, Apache-2.0);
* `chat/sharegpt_conversations.json`: conversations in the ShareGPT layout used by
  Vicuna/FastChat (lm-sys/FastChat, Apache-2.0);
* `math/gsm8k_{train,test}.jsonl`: GSM8K (Cobbe et al., 2021; openai/grade-school-math,
  MIT), the chain-of-thought benchmark of Wei et al. (2022);
* the Alpaca format is Stanford Alpaca's (tatsu-lab/stanford_alpaca; its data is
  CC BY-NC 4.0); lmforge's own instruction data is the built-in world
  (`lmforge world`), generated, with no licence attached.

Modules: `records` (streaming), `fields` (checked fields), one per format
(`messages`, `prompt_completion`, `sharegpt`, `alpaca`, `gsm8k`), `formats`
(detection), `read`, `registry` (task templates, seen / held out, inverted),
`world_fields`, `answers` (extractors), `spec` (the YAML), `mixture`.
"""

from .answers import EXTRACTORS, extract_answer, score
from .formats import FORMATS, detect_format
from .mixture import Mixture, SourceReport, build_mixture, load_mixture
from .options import ReadOptions
from .read import FileCounts, ReadResult, instruction_files, iter_conversations, read_instructions
from .registry import TEMPLATES, TaskTemplate, templates_for
from .spec import MixtureSpec, SourceSpec, load_mixture_spec

__all__ = [
    "EXTRACTORS",
    "FORMATS",
    "TEMPLATES",
    "FileCounts",
    "Mixture",
    "MixtureSpec",
    "ReadOptions",
    "ReadResult",
    "SourceReport",
    "SourceSpec",
    "TaskTemplate",
    "build_mixture",
    "detect_format",
    "extract_answer",
    "instruction_files",
    "iter_conversations",
    "load_mixture",
    "load_mixture_spec",
    "read_instructions",
    "score",
    "templates_for",
]
