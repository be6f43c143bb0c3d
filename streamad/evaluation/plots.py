"""Pictures of a model's view of one window: input patch, reconstruction, residual (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from streamad.model import AnomalyModel


def plot_residual(model: AnomalyModel, window: np.ndarray, path: str | Path, title: str) -> str:
    """Input patch, reconstruction and residual |x - G(x)| of one window as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = model.patches(window[None])
    rec = None
    if x.dim() == 3:  # a raw-waveform detector: show the front end's patch of the window
        x = model.frontend.transform(torch.from_numpy(np.asarray(window[None], dtype=np.float32)))
    else:
        rec = model.detector.reconstruct(x)
    panels = [("input (standardised patch)", x[0, 0].cpu().numpy())]
    if rec is not None:
        r = rec[0, 0].numpy()
        panels += [("reconstruction G(x)", r), ("residual |x - G(x)|", np.abs(panels[0][1] - r))]
    fig = Figure(figsize=(4 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma" if "residual" in name else "viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("row (mel band / channel)")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=90)
    return str(path)
