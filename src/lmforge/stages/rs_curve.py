"""The best-of-n curve of rejection sampling (LLaMA-2, Touvron et al. 2023, Fig. 7).

For every prompt with rewards r_1..r_N of its N samples, and for n = 1, 2, 4, ..., N:

* the expected **max** reward of n samples drawn without replacement from the N,
  exactly: with the rewards sorted ascending, r_(1) <= ... <= r_(N),
  E[max] = Σ_i r_(i) C(i-1, n-1) / C(N, n) (the i-th smallest is the max of the
  subsets that take it and n-1 of the i-1 below it). With a 0/1 checker this is
  the unbiased pass@n estimator (Chen et al. 2021): 1 - C(N-c, n) / C(N, n);
* the expected **median** of those n rewards, exactly too: the k-th smallest of
  the subset is r_(i) with probability C(i-1, k-1) C(N-i, n-k) / C(N, n); the
  median is the ((n+1)/2)-th smallest for odd n and the mean of the (n/2)-th
  and (n/2+1)-th for even n (linear, so its expectation is the mean of theirs).

Both are averaged over prompts. The gap between the two curves is what rejection
sampling gains over a single sample: LLaMA-2 shows the max rising with N while
the median stays flat. `describe_curve` says in words what a curve shows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import atomic_write_text


def curve_sizes(n: int) -> list[int]:
    """1, 2, 4, ... up to `n`, and `n` itself."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return [*out, n]


def expected_order_stat(rewards: Sequence[float], n: int, k: int) -> float:
    """E[k-th smallest of n rewards drawn without replacement from `rewards`] (1 <= k <= n)."""
    r = sorted(rewards)
    N = len(r)
    if not 1 <= k <= n <= N:
        raise ValueError(f"need 1 <= k <= n <= N, got k={k}, n={n}, N={N}")
    total = math.comb(N, n)
    # The i-th smallest (1-based) is the k-th of the subset: k-1 of the i-1 below, n-k above.
    return (
        sum(r[i - 1] * math.comb(i - 1, k - 1) * math.comb(N - i, n - k) for i in range(1, N + 1))
        / total
    )


def expected_max(rewards: Sequence[float], n: int) -> float:
    """E[max of n rewards drawn without replacement from `rewards`]."""
    return expected_order_stat(rewards, n, n)


def expected_median(rewards: Sequence[float], n: int) -> float:
    """E[median of n rewards drawn without replacement from `rewards`]."""
    if n % 2:
        return expected_order_stat(rewards, n, (n + 1) // 2)
    return 0.5 * (
        expected_order_stat(rewards, n, n // 2) + expected_order_stat(rewards, n, n // 2 + 1)
    )


def best_of_n_curve(per_prompt: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """[{"n", "max", "median"}] for n in `curve_sizes(N)`, each averaged over the prompts."""
    if not per_prompt:
        return []
    N = len(per_prompt[0])
    if any(len(r) != N for r in per_prompt):
        raise ValueError("every prompt needs the same number of samples")
    rows = []
    for n in curve_sizes(N):
        mx = sum(expected_max(r, n) for r in per_prompt) / len(per_prompt)
        med = sum(expected_median(r, n) for r in per_prompt) / len(per_prompt)
        rows.append({"n": n, "max": mx, "median": med})
    return rows


def describe_curve(rows: Sequence[dict[str, float]], tol: float = 0.02) -> str:
    """One sentence saying plainly what the curve shows (the max against the median as n grows)."""
    if len(rows) < 2:
        return f"one sample per prompt (n = 1): mean reward {rows[0]['max']:.3f}." if rows else ""
    a, b = rows[0], rows[-1]
    d_max, d_med = b["max"] - a["max"], b["median"] - a["median"]
    scale = max(abs(a["max"]), abs(b["max"]), 1e-9)
    what = (
        f"from n = 1 to n = {b['n']} the expected max reward goes {a['max']:.3f} → {b['max']:.3f} "
        f"({d_max:+.3f}) and the expected median {a['median']:.3f} → {b['median']:.3f} "
        f"({d_med:+.3f})"
    )
    if d_max <= tol * scale:
        verdict = (
            "the max does not rise with n: a prompt's samples score alike, so rejection "
            "sampling has little to choose from (raise the temperature or N)"
        )
    elif abs(d_med) <= max(tol * scale, 0.1 * d_max):
        verdict = "the max rises with n while the median stays flat, as in LLaMA-2's Fig. 7"
    else:
        verdict = (
            f"the max rises with n and the median moves {'up' if d_med > 0 else 'down'} by "
            f"{abs(d_med) / d_max:.0%} of the max's rise (the median of n samples tends to a "
            "prompt's typical reward: with a right/wrong reward it falls where most samples "
            "are wrong and rises where most are right)"
        )
    return f"{what}: {verdict}."


def curve_markdown(rows: Sequence[dict[str, float]], title: str) -> str:
    """The curve as a markdown table, with `describe_curve`'s sentence."""
    lines = [f"# {title}", "", "| n | expected max reward | expected median reward | gap |",
             "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['max']:.4f} | {r['median']:.4f} | {r['max'] - r['median']:.4f} |"
        )
    lines += ["", describe_curve(rows), ""]
    return "\n".join(lines)


def plot_curve(rows: Sequence[dict[str, float]], path: Path, title: str) -> Path:
    """curve.png: expected max and median reward against n (log2 axis), headless."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [r["max"] for r in rows], marker="o", label="max of n")
    ax.plot(ns, [r["median"] for r in rows], marker="s", label="median of n")
    ax.fill_between(ns, [r["median"] for r in rows], [r["max"] for r in rows], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("samples per prompt (n)")
    ax.set_ylabel("reward (mean over prompts)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")  # renamed: a viewer never sees half a PNG
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def write_curve(
    folder: Path, rows: Sequence[dict[str, float]], summary: dict[str, Any], title: str
) -> None:
    """curve.json (the rows and the iteration's summary), curve.md and curve.png in `folder`."""
    atomic_write_text(
        folder / "curve.json", json.dumps({"curve": list(rows), **summary}, indent=2) + "\n"
    )
    atomic_write_text(folder / "curve.md", curve_markdown(rows, title))
    plot_curve(rows, folder / "curve.png", title)
