"""Figures of a one-step run: Schrödinger wavefunctions over the well, PageRank scores, inverse errors (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.one_step_problems import potential


def plot_result(result: Any, params: dict[str, Any], path: str | Path) -> str:
    """Draw ``result`` (a ``OneStepResult``) into a PNG at ``path``; returns a one-line description."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(f"plots need matplotlib ({exc}); install it with: pip install \"xbarlab[cluster]\"") from None
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    if result.problem == "schrodinger":
        x = result.x
        v = potential(params["potential"], x, params["depth"])
        spacing = float(np.max(np.diff(result.energies_exact))) if len(result.energies_exact) > 1 else 1.0
        scale = 0.4 * spacing / max(float(np.max(np.abs(result.wavefunctions_exact))), 1e-12)
        ax.plot(x, v, color="0.6", label="V(x)")
        for k, (psi, ref, e) in enumerate(zip(result.wavefunctions, result.wavefunctions_exact, result.energies,
                                              strict=True)):
            line, = ax.plot(x, e + scale * psi, "o-", ms=3, label=f"state {k}, array (E = {e:.2f})")
            ax.plot(x, result.energies_exact[k] + scale * ref, "--", color=line.get_color(), alpha=0.6,
                    label=f"state {k}, numpy (E = {result.energies_exact[k]:.2f})")
        ax.set_xlabel("x (box length 1)")
        ax.set_ylabel("energy (hbar^2/(m L^2)); wavefunctions offset by their energy")
        ax.set_ylim(min(0.0, float(np.min(result.energies_exact)) - spacing),
                    float(np.max(result.energies)) + 1.5 * spacing)
        ax.set_title(f"one-step Schrodinger: {params['potential']} well, {len(x)} points")
        what = f"{len(result.energies)} wavefunctions"
        ax.legend(fontsize=7)
    elif result.problem == "pagerank":
        order = np.argsort(-result.scores_exact)
        idx = np.arange(len(order))
        ax.bar(idx - 0.2, result.scores_exact[order], 0.4, label="digital PageRank")
        ax.bar(idx + 0.2, result.scores[order], 0.4, label="array")
        ax.set_xticks(idx, [str(i) for i in order], fontsize=7)
        ax.set_xlabel("page (by digital rank)")
        ax.set_ylabel("score")
        ax.set_title(f"one-step PageRank: Kendall tau {result.kendall_tau:.3f}, top-10 {result.top10:.0%}")
        what = f"scores of {len(order)} pages"
        ax.legend(fontsize=7)
    else:
        im = ax.imshow(result.inverse, cmap="coolwarm")
        fig.colorbar(im, ax=ax)
        ax.set_title(f"one-step inverse: relative error {result.inverse_rel_error:.2%}")
        what = f"the {result.n}x{result.n} inverse"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"plotted {what} to {path}"
