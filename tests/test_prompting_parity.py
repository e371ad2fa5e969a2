"""Label-scoring parity: lmforge's shared-cache scores against `transformers` and
lm-evaluation-harness (pinned: lm-eval==0.4.13) on the same exported tiny LLaMA.

* `transformers`: per label, one full forward of prompt + label tokens on the
  exported model; the summed label log-probabilities agree to 1e-4.
* lm-evaluation-harness, offline (``HF_HUB_OFFLINE=1``) on the exported folder and a
  local task YAML (``dataset_path: json``, ``output_type: multiple_choice``): its
  documents hold our prompt texts, with the start token written as text
  (``<|eos|>``, which the Hugging Face tokenizer parses), the label words as
  choices and ``target_delimiter: " "``, so its context and continuation tokens are
  ours (checked). Its per-choice log-likelihoods, its chosen label per example and
  its accuracy equal ours.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_fewshot_cli import make_prompting_run

from lmforge.prompting.builder import PromptBuilder, order_demos, sample_demos
from lmforge.prompting.scoring import score_prompts
from lmforge.prompting.tasks import load_task
from lmforge.runs import load_run

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    made = make_prompting_run(tmp_path_factory.mktemp("parity"), seed=3)
    made["opened"] = load_run(made["run"])
    return made


def prompt_set(made, name: str, k: int, seeds=(0, 1, 2)):
    """(task, builder, prompts): `k`-shot prompts of every test example for each seed."""
    task = load_task(name, world=made["world"])
    b = PromptBuilder(task, made["opened"].tokenizer)
    prompts = []
    for s in seeds:
        demos = order_demos(sample_demos(task, k, seed=s), seed=s)
        prompts += b.build_many(demos, task.test)
    return task, b, prompts


@pytest.mark.parametrize("name,k", [("sentiment", 2), ("topic", 4)])
def test_label_logprobs_equal_transformers(made, name, k):
    task, b, prompts = prompt_set(made, name, k)
    ours = score_prompts(made["opened"].model, b, prompts, batch_size=5)
    hf = transformers.AutoModelForCausalLM.from_pretrained(made["hf"]).eval()
    flat = [ids for words in b.label_ids() for ids in words]
    theirs = torch.zeros(len(prompts), len(flat), dtype=torch.float64)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            for j, c in enumerate(flat):
                logits = hf(torch.tensor([p.ids + c])).logits[0]
                lp = torch.log_softmax(logits.double(), -1)
                theirs[i, j] = sum(lp[len(p.ids) - 1 + t, c[t]] for t in range(len(c)))
    assert (ours.word_scores - theirs).abs().max().item() <= 1e-4
    assert ours.word_scores.abs().min() > 1.0  # not trivially zero


def _lm_eval_task(folder: Path, name: str, docs_file: Path) -> None:
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {docs_file}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: prompt\n"
        "doc_to_choice: choices\n"
        "doc_to_target: gold\n"
        'target_delimiter: " "\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )


@pytest.mark.slow
def test_accuracy_and_choices_equal_lm_evaluation_harness(made, tmp_path):
    import lm_eval

    assert lm_eval.__version__ == "0.4.13"
    tok = made["opened"].tokenizer
    hf_tok = transformers.AutoTokenizer.from_pretrained(made["hf"])
    start = tok.id_to_token(tok.eos_id)
    tasks, ours = {}, {}
    for name, k in (("sentiment", 2), ("topic", 4)):
        task, b, prompts = prompt_set(made, name, k)
        assert all(len(words) == 1 for words in task.label_words.values())
        docs = []
        for p in prompts:
            assert hf_tok(start + p.text).input_ids == p.ids  # the same context tokens
            docs.append({
                "prompt": start + p.text,
                "choices": [task.label_words[x][0] for x in task.labels],
                "gold": task.labels.index(p.query.label),
            })  # fmt: skip
        docs_file = tmp_path / f"{name}.jsonl"
        docs_file.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        _lm_eval_task(tmp_path, f"lmforge_{name}", docs_file)
        tasks[f"lmforge_{name}"] = (task, docs)
        ours[f"lmforge_{name}"] = score_prompts(made["opened"].model, b, prompts)
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"), "TOKENIZERS_PARALLELISM": "false",
    }  # fmt: skip
    out = tmp_path / "lm_eval_out"
    r = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
         f"pretrained={made['hf']},dtype=float32", "--tasks", ",".join(tasks),
         "--include_path", str(tmp_path), "--device", "cpu", "--batch_size", "8",
         "--output_path", str(out), "--log_samples"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    for name, (_, docs) in tasks.items():
        (samples_file,) = out.rglob(f"samples_{name}_*.jsonl")
        samples = sorted(
            (json.loads(x) for x in samples_file.read_text().splitlines()),
            key=lambda s: s["doc_id"],
        )
        theirs = torch.tensor(
            [[float(ll) for ll, _ in s["filtered_resps"]] for s in samples], dtype=torch.float64
        )
        s = ours[name]
        assert (s.scores - theirs).abs().max().item() <= 1e-4
        mine = s.scores.argmax(-1)
        assert mine.tolist() == theirs.argmax(-1).tolist()  # the chosen label, per example
        gold = torch.tensor([d["gold"] for d in docs])
        acc = (mine == gold).double().mean().item()
        assert abs(results[name]["acc,none"] - acc) < 1e-12
        assert [sm["acc"] for sm in samples] == (mine == gold).double().tolist()
