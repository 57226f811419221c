"""``xbarlab sweep show DIR``: the index as a table, and the plot that fits its axes.

Seed axes (``seed``, ``sim.seed``, ``campaign.seed``) are averaged over: each plotted value is the
mean over seeds with the sample standard deviation as its spread. One remaining axis gives a figure-vs-axis
line with error bars; two give a heat map of the mean (spread printed in each cell); more are
averaged beyond the first two, and the title says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.sweep.index import SweepIndex

SEED_AXES = ("seed", "sim.seed", "campaign.seed")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4g}"
    return str(v)


def varying_figures(index: SweepIndex) -> list[str]:
    """Figures whose value differs between points (constants such as cell counts are left out)."""
    out = []
    for name in index.figures:
        col = index.column(name)
        col = col[~np.isnan(col)]
        if col.size and np.ptp(col) > 0:
            out.append(name)
    return out


def default_figures(index: SweepIndex) -> list[str]:
    """The sweep file's ``[sweep] figures`` if given and present, else the first varying figure."""
    import tomllib

    named = tomllib.loads(index.sweep_text).get("sweep", {}).get("figures", [])
    chosen = [f for f in named if f in index.figures]
    if chosen:
        return chosen
    vary = varying_figures(index)
    return vary[:1] if vary else index.figures[:1]


def format_table(index: SweepIndex, figures: list[str]) -> str:
    head = ["point", *index.axes, "status", *figures, "log"]
    body = [[r["point_id"], *(_fmt(r["values"][a]) for a in index.axes), r["status"],
             *(_fmt(r.get("figures", {}).get(f, math.nan)) for f in figures), r["log"]] for r in index.rows]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    lines = [f"sweep '{index.sweep_name}' ({index.sweep_source}): {len(index.rows)} points, "
             + ", ".join(f"{n} {s}" for s, n in index.counts().items())]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for row in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for r in index.rows:
        if r["status"] != "completed" and r.get("error"):
            lines.append(f"  {r['point_id']}: {r['status']}: {r['error'][:200]}")
    return "\n".join(lines)


def aggregate(index: SweepIndex, figure: str) -> tuple[list[str], dict[tuple[Any, ...], tuple[float, float, int]]]:
    """Mean, standard deviation and count of ``figure`` over seeds (completed points) per plotted-axis tuple."""
    axes = [a for a in index.axes if a not in SEED_AXES and len({r["values"][a] for r in index.rows}) > 1]
    plotted = axes[:2]
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in index.rows:
        v = r.get("figures", {}).get(figure)
        key = tuple(r["values"][a] for a in plotted)
        groups.setdefault(key, [])
        if r["status"] == "completed" and v is not None and math.isfinite(v):
            groups[key].append(v)
    stats = {k: ((float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) if v
                 else (math.nan, math.nan, 0))
             for k, v in groups.items()}
    return axes, stats


def plot_figure(index: SweepIndex, figure: str, path: Path) -> str:
    """Draw ``figure`` against the sweep's axes into a PNG at ``path``; returns a one-line description."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(f"plots need matplotlib ({exc}); install it with: pip install \"xbarlab[cluster]\"") from None
    if figure not in index.figures:
        raise ConfigError(f"no figure {figure!r} in the sweep index; figures: {', '.join(index.figures) or 'none'}")
    axes, stats = aggregate(index, figure)
    plotted, rest = axes[:2], axes[2:]
    seeds = max((s[2] for s in stats.values()), default=0)
    note = f"mean ± std over {seeds} seeds" if seeds > 1 else "one run per point"
    if rest:
        note += "; averaged over " + ", ".join(rest)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    if len(plotted) <= 1:
        keys = sorted(stats, key=lambda k: k[0] if k else 0)
        x = [k[0] if k else 0 for k in keys]
        mean = [stats[k][0] for k in keys]
        std = [stats[k][1] for k in keys]
        numeric = all(isinstance(v, (int, float)) for v in x)
        xs = x if numeric else list(range(len(x)))
        ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3)
        if not numeric:
            ax.set_xticks(xs, [str(v) for v in x])
        ax.set_xlabel(plotted[0] if plotted else "point")
        ax.set_ylabel(figure)
        ax.grid(alpha=0.3)
        kind = f"{figure} vs {plotted[0] if plotted else 'point'}"
    else:
        xs = sorted({k[0] for k in stats})
        ys = sorted({k[1] for k in stats})
        grid = np.full((len(ys), len(xs)), np.nan)
        for (xv, yv), (m, _, _) in stats.items():
            grid[ys.index(yv), xs.index(xv)] = m
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        for (xv, yv), (m, s, _) in stats.items():
            shade = im.norm(m) if math.isfinite(m) else 1.0
            ax.text(xs.index(xv), ys.index(yv), f"{m:.3g}\n±{s:.2g}" if seeds > 1 else f"{m:.3g}", ha="center",
                    va="center", fontsize=8, color="white" if shade < 0.5 else "black")
        ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
        ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
        ax.set_xlabel(plotted[0])
        ax.set_ylabel(plotted[1])
        fig.colorbar(im, ax=ax, label=figure)
        kind = f"heat map of {figure} over {plotted[0]} x {plotted[1]}"
    ax.set_title(f"{index.sweep_name}\n{figure} ({note})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"{kind} ({note}) -> {path}"
