"""ROC curves as PNG (matplotlib's Agg canvas; no pyplot, no global backend change)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np


def plot_roc(curves: Mapping[str, Sequence], path, title: str = "ROC curves") -> str:
    """Plot one or more ROC curves to a PNG file.

    Parameters
    ----------
    curves : dict name -> (fpr, tpr, auc)
        ``auc`` may be None to omit it from the legend.
    path : str or path-like
        Output PNG path (parent directories are created).
    title : str

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend
    change), importing matplotlib only when called.  Returns ``str(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    for name, curve in curves.items():
        fpr, tpr = np.asarray(curve[0], float), np.asarray(curve[1], float)
        auc = curve[2] if len(curve) > 2 else None
        label = f"{name} (AUC={auc:.3f})" if auc is not None else str(name)
        ax.plot(fpr, tpr, linewidth=1.5, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path
