"""The recipe's report card: ROOT/report.md and a self-contained ROOT/report.html.

Per stage: wall time, tokens trained on, parameters and the number the stage moves
(validation bits per byte; task accuracy from the `eval tasks` folders, compared with
`eval.tasks_report.compare_results`; the reward model's accuracy by margin bucket from
`eval reward`'s results.json; PPO's reward and KL per iteration with
`stages.ppo_report.iteration_table`), a verdict per stage computed from the numbers, every
stage's plots (inlined as base64 in the HTML), sample conversations, the machine and the
versions. Both files are rendered from one list of blocks.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
from pathlib import Path
from typing import Any

from ..common import atomic_write_text
from ..eval.tasks_report import compare_results, load_task_eval
from .recipe_config import Recipe, Step

Block = tuple[str, Any]  # ("h2", text) ("p", text) ("table", markdown) ("img", path) ("pre", text)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _checkpoint(run: Path) -> Path | None:
    try:
        name = (run / "latest").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    ckpt = run / "checkpoints" / name
    return ckpt if ckpt.is_dir() else None


def run_numbers(run: Path) -> dict[str, Any]:
    """Tokens trained on and parameters of a run's latest checkpoint (headers only)."""
    ckpt = _checkpoint(run)
    if ckpt is None:
        return {}
    out: dict[str, Any] = {}
    tokens = _json(ckpt / "trainer_state.json").get("tokens_seen")
    if tokens is not None:
        out["tokens"] = int(tokens)
    try:
        from safetensors import safe_open

        n = 0
        with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
            for k in f.keys():
                shape = f.get_slice(k).get_shape()
                size = 1
                for d in shape:
                    size *= d
                n += size
        out["params"] = n
    except (OSError, ImportError, RuntimeError):
        pass
    return out


def last_val_bpb(run: Path) -> float | None:
    """The last validation bits per byte in a run's metrics.jsonl."""
    best = None
    try:
        with open(run / "metrics.jsonl", encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("val_bpb") is not None:
                    best = float(rec["val_bpb"])
    except OSError:
        return None
    return best


def _pct(a: float) -> str:
    return f"{100 * a:.1f}%"


def verdict(name: str, before: Any, after: Any, prev: str) -> str:
    """One line from two `Accuracy` values: the change in points and whether it is a gain."""
    a0, a1 = before.accuracy, after.accuracy
    d = 100 * (a1 - a0)
    head = f"{name}: accuracy {_pct(a0)} -> {_pct(a1)} ({d:+.1f} points vs {prev})"
    if d <= 0:
        return head + ": no gain at this scale"
    lo1, _ = after.interval
    _, hi0 = before.interval
    if lo1 > hi0:
        return head + ": a gain beyond the 95% intervals"
    return head + f": a gain within the 95% intervals (n={after.n}), not conclusive"


def _eval_results(recipe: Recipe) -> list[tuple[str, Any]]:
    out = []
    for st in recipe.steps:
        if st.results_kind == "lmforge eval tasks" and (Path(st.folder) / "results.json").is_file():
            out.append((st.name.removeprefix("eval_"), load_task_eval(st.folder)))
    return out


def _plots(folder: Path) -> list[Path]:
    found = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    return found + sorted(folder.glob("*.png")) if folder.is_dir() else found


def machine() -> list[tuple[str, str]]:
    """CPU, cores, RAM, GPU and the versions."""
    import torch

    import lmforge

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        ram = "unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("RAM", ram),
        ("GPU", gpu),
        ("OS", platform.platform()),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("lmforge", lmforge.__version__),
    ]


def _kv_table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def _stage_row(step: Step, rec: dict[str, Any], accs: dict[str, Any]) -> list[str]:
    folder = Path(step.folder)
    nums = run_numbers(folder) if step.training else {}
    metric = ""
    if step.kind == "pretrain":
        bpb = last_val_bpb(folder)
        metric = f"val bits/byte {bpb:.3f}" if bpb is not None else ""
        if "base" in accs:
            metric += f"; task accuracy {_pct(accs['base'].accuracy)}"
    elif step.kind in ("sft", "rs", "ppo") and step.kind in accs:
        metric = f"task accuracy {_pct(accs[step.kind].accuracy)}"
    elif step.kind == "reward_eval":
        acc = _json(folder / "results.json").get("accuracy")  # `eval reward`'s results.json
        if isinstance(acc, dict) and "accuracy" in acc:
            metric = f"pairwise accuracy {_pct(acc['accuracy'])} ({acc['correct']}/{acc['n']})"
    elif step.kind == "shards":
        meta = _json(folder / "meta.json")
        toks = {
            k: v.get("tokens") for k, v in meta.get("splits", {}).items() if isinstance(v, dict)
        }
        metric = ", ".join(f"{k} {v:,} tokens" for k, v in toks.items() if v is not None)
    tokens = f"{nums['tokens']:,}" if "tokens" in nums else ""
    params = f"{nums['params']:,}" if "params" in nums else ""
    wall = f"{rec['wall_s']:.0f}" if isinstance(rec.get("wall_s"), (int, float)) else ""
    return [step.name, rec.get("status", ""), wall, tokens, params, metric]


def _reward_blocks(recipe: Recipe) -> list[Block]:
    for st in recipe.steps:
        if st.kind != "reward_eval":
            continue
        buckets = _json(Path(st.folder) / "results.json").get("by", {}).get("bucket", {})
        if not buckets:
            return []
        rows = [(b, f"{_pct(a['accuracy'])} ({a['correct']}/{a['n']})") for b, a in buckets.items()]
        return [("h2", "Reward model: pairwise accuracy by margin"),
                ("table", _kv_table(rows, ("margin bucket", "accuracy")))]  # fmt: skip
    return []


def _ppo_blocks(recipe: Recipe) -> list[Block]:
    from ..stages.ppo_report import iteration_table
    from ..stages.ppo_rollout import read_iterations

    for st in recipe.steps:
        if st.kind != "ppo":
            continue
        try:
            rows = read_iterations(st.folder)
        except (OSError, ValueError):  # an unreadable table: no PPO section
            return []
        if not rows:
            return []
        first, last = rows[0], rows[-1]
        line = (
            f"PPO over {len(rows)} iterations: mean reward {first.get('mean_score', 0):.3f} -> "
            f"{last.get('mean_score', 0):.3f}, KL to the reference {last.get('kl', 0):.3f} "
            "nats per answer at the end"
        )
        return [("h2", "PPO: reward and KL per iteration"), ("p", line),
                ("table", iteration_table(rows))]  # fmt: skip
    return []


def _samples(results: list[tuple[str, Any]], k: int = 3) -> list[Block]:
    if not results:
        return []
    name, res = results[-1]
    blocks: list[Block] = [("h2", f"Sample conversations ({name} model)")]
    for p in res.predictions[:k]:
        mark = "right" if p.correct else "wrong"
        blocks.append(
            ("pre", f"{p.prompt}\n--- answer ({mark}; expected {p.answer}):\n{p.response}")
        )
    return blocks


def reward_verdict(acc: dict[str, Any]) -> str:
    """The reward model against chance (50% of pairs), from `eval reward`'s accuracy."""
    head = f"Reward model: pairwise accuracy {_pct(acc['accuracy'])} ({acc['correct']}/{acc['n']})"
    low = acc.get("ci95", [0.0, 1.0])[0]
    if low > 0.5:
        return head + ": better than chance (50%) beyond the 95% interval"
    return head + ": not better than chance (50%) at this scale"


def ppo_verdict(rows: list[dict[str, Any]]) -> str:
    """Did PPO raise the rollouts' reward, and how far did it move from the reference?"""
    r0, r1 = rows[0].get("mean_score") or 0.0, rows[-1].get("mean_score") or 0.0
    kl = rows[-1].get("kl") or 0.0
    moved = "rose" if r1 > r0 else "did not rise"
    return (
        f"PPO rollouts: mean reward {r0:.3f} -> {r1:.3f} over {len(rows)} iterations "
        f"({moved}), KL to the reference {kl:.3f} nats per answer at the end"
    )


def _reward_and_ppo_lines(recipe: Recipe) -> list[str]:
    from ..stages.ppo_rollout import read_iterations

    lines = []
    for st in recipe.steps:
        if st.kind == "reward_eval":
            acc = _json(Path(st.folder) / "results.json").get("accuracy")
            if isinstance(acc, dict) and "accuracy" in acc:
                lines.append(reward_verdict(acc))
        elif st.kind == "ppo":
            try:
                rows = read_iterations(st.folder)
            except (OSError, ValueError):
                rows = []
            if rows:
                lines.append(ppo_verdict(rows))
    return lines


def build_blocks(root: Path, recipe: Recipe, state: dict[str, Any]) -> list[Block]:
    """Everything the card shows, in order."""
    records = state.get("steps", {})
    results = _eval_results(recipe)
    accs = {name: res.groups["overall"][next(iter(res.groups["overall"]))] for name, res in results}
    blocks: list[Block] = [
        ("h1", "lmforge recipe report card"),
        ("p", f"Recipe {recipe.path}, folder {root}."),
    ]
    lines = []
    order = [("sft", "base", "SFT"), ("rs", "sft", "RS"), ("ppo", "rs", "PPO")]
    for name, prev, title in order:
        if name in accs:
            base = prev if prev in accs else next((n for n in ("sft", "base") if n in accs), None)
            if base and base != name:
                lines.append(verdict(title, accs[base], accs[name], base))
    bpb = next((last_val_bpb(Path(s.folder)) for s in recipe.steps if s.kind == "pretrain"), None)
    if bpb is not None:
        lines.insert(0, f"Pretraining: validation {bpb:.3f} bits per byte")
    lines += _reward_and_ppo_lines(recipe)
    if lines:
        blocks += [("h2", "What each stage bought"), ("list", lines)]
    head = "| stage | status | wall s | tokens trained on | parameters | metric |\n|---|---|---|---|---|---|"
    rows = ["| " + " | ".join(_stage_row(s, records.get(s.name, {}), accs)) + " |"
            for s in recipe.steps]  # fmt: skip
    blocks += [("h2", "Stages"), ("table", "\n".join([head, *rows]))]
    if results:
        blocks += [("h2", "Task accuracy after each stage (test set, held-out templates and tasks)"),
                   ("table", compare_results(results).to_markdown().strip())]  # fmt: skip
    blocks += _reward_blocks(recipe) + _ppo_blocks(recipe)
    plots: list[Block] = []
    for st in recipe.steps:
        p = Path(st.folder)
        for img in _plots(p) if p.is_dir() else []:
            plots.append(("img", img))
    cmp_png = next((Path(a) for s in recipe.steps if s.compare
                    for a in s.argv if a.endswith(".png")), None)  # fmt: skip
    if cmp_png is not None and cmp_png.is_file():
        plots.insert(0, ("img", cmp_png))
    if plots:
        blocks += [("h2", "Plots"), *plots]
    blocks += _samples(results)
    blocks += [("h2", "Machine and versions"), ("table", _kv_table(machine(), ("", "")))]
    return blocks


def to_markdown(blocks: list[Block], root: Path) -> str:
    out: list[str] = []
    for kind, v in blocks:
        if kind == "h1":
            out.append(f"# {v}\n")
        elif kind == "h2":
            out.append(f"## {v}\n")
        elif kind == "p":
            out.append(f"{v}\n")
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in v) + "\n")
        elif kind == "table":
            out.append(v + "\n")
        elif kind == "img":
            rel = os.path.relpath(v, root)
            out.append(f"![{rel}]({rel})\n")
        elif kind == "pre":
            out.append("```\n" + v + "\n```\n")
    return "\n".join(out)


def _md_table_html(md: str) -> str:
    lines = [ln.strip() for ln in md.strip().splitlines() if ln.strip()]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head, body = cells[0], [c for c in cells[2:]]
    th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    trs = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in row) + "</tr>"
        for row in body
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}pre{background:#f5f5f5;padding:.6em;white-space:pre-wrap}"
    "img{max-width:100%;display:block;margin:1em 0}"
)


def to_html(blocks: list[Block]) -> str:
    """One file: tables as HTML, images as base64 data URIs (no network)."""
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>lmforge recipe</title>",
           f"<style>{STYLE}</style></head><body>"]  # fmt: skip
    for kind, v in blocks:
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(v)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(v)}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in v) + "</ul>")
        elif kind == "table":
            out.append(_md_table_html(v))
        elif kind == "img":
            data = base64.b64encode(Path(v).read_bytes()).decode("ascii")
            out.append(
                f"<img alt='{html.escape(Path(v).name)}' src='data:image/png;base64,{data}'>"
            )
        elif kind == "pre":
            out.append(f"<pre>{html.escape(v)}</pre>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_recipe_report(root: str | Path, recipe: Recipe, state: dict[str, Any]) -> list[Path]:
    """Write ROOT/report.md and ROOT/report.html; returns their paths."""
    root = Path(root)
    blocks = build_blocks(root, recipe, state)
    md, page = root / "report.md", root / "report.html"
    atomic_write_text(md, to_markdown(blocks, root))
    atomic_write_text(page, to_html(blocks))
    return [md, page]
