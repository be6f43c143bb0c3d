"""Progress bars for long jobs (stderr; quiet when not a terminal unless forced)."""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def bar(total: int, desc: str, unit: str = "it", enable: bool = True) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enable,
                dynamic_ncols=True, mininterval=0.5, leave=True)


def loss_callback(pbar: tqdm):
    def cb(step: int, total: int, losses: dict[str, Any]) -> None:
        pbar.total = total
        pbar.n = step
        if losses:
            pbar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        pbar.refresh() if step == total else pbar.update(0)
    return cb
