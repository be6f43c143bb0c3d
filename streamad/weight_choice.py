"""Choosing a model's score weights from its own normal audio (``model.score_weights_choice``).

Which combination of score components hears events best differs between places: a component that
picks out a few raised bands lifts a typewriter or a busy street and costs steady textures (rain,
paper, a laundry room) — docs/EVAL.md. A per-scene model cannot be tuned on that scene's events
(there are none at training), but it can be asked a proxy question with what it has: tell the
held-back normal windows from the same windows with one generic synthetic sound added (a tone, a
sweep or a decaying noise burst, :mod:`streamad.windows.synthetic`), each scored by a model that
never heard that stretch (the calibration's fold model). Every candidate weight set is scored on
both; the one with the highest ROC-AUC is kept (ties: the first, i.e. ``model.score_weights``). The
synthetic windows only ever rank candidates: no model is fitted on them and the threshold is fitted
on the normal windows alone, with the chosen weights.

The same figure for the kept weights is the model's **hearing check** (``train.hearing_check``, on for
audio): how well it hears generic sounds added to its own place. It is recorded with the model
(``calibration.holdout.hearing_check``), printed by ``streamad train``, and below ``HEARING_WARN``
training warns that events will often be missed there (on the per-scene benchmark it ranks scenes as
their real event ROC-AUC does: docs/EVAL.md).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from streamad.calibrate import Calibration
from streamad.metrics.roc import roc_auc
from streamad.windows.synthetic import SyntheticWindows

log = logging.getLogger("streamad.train")

PER_WINDOW = 2  # synthetic windows per held-back window
MAX_WINDOWS = 4096  # at most this many synthetic windows in all
BATCH = 512  # synthetic windows made and scored at a time
HEARING_WARN = 0.85  # below this hearing-check AUC, training warns (docs/EVAL.md: dev scenes under it were hard)


def synthetic_components(scored: list[tuple[Any, list[np.ndarray]]], seed: int) -> dict[str, np.ndarray]:
    """Components of the held-back windows with one synthetic sound each, every window scored by the
    model that held it back (at its front end's rate, inside its window span past the context):
    ``scored`` = [(model, [held-back window arrays])]."""
    total = sum(len(h) for _, hold in scored for h in hold)
    per = min(float(PER_WINDOW), MAX_WINDOWS / max(1, total))
    parts: list[dict[str, np.ndarray]] = []
    j = 0
    for model, hold in scored:
        for h in hold:
            j += 1
            if not len(h):
                continue
            rows = SyntheticWindows(h, max(1, int(round(per * len(h)))), model.frontend.rate, seed=seed * 1009 + j,
                                    lead=model.frontend.lead)
            for i in range(0, len(rows), BATCH):  # made batch by batch: never all in memory at once
                parts.append(model.components(rows[i:i + BATCH], BATCH))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def choose(candidates: list[dict[str, float]], normal: dict[str, np.ndarray], added: dict[str, np.ndarray],
           cal: Calibration) -> tuple[int, list[float]]:
    """(index of the chosen candidate, each candidate's ROC-AUC of ``added`` over ``normal``), every
    candidate standardised as ``cal`` (its centre and scale) and weighted as :meth:`Calibration.combine`."""
    y = np.r_[np.ones(len(next(iter(added.values())))), np.zeros(len(next(iter(normal.values()))))]
    aucs = []
    for w in candidates:  # a NaN score never alerts (ranked lowest); an infinite one ranks highest
        c = replace(cal, weights=w)
        s = np.nan_to_num(np.r_[c.combine(added), c.combine(normal)],
                          nan=-1e300, posinf=1e300, neginf=-1e300)
        aucs.append(float(roc_auc(y, s)))
    return int(np.argmax(aucs)), aucs  # argmax: the first of equals


def report(auc: float) -> None:
    """The hearing check's one log line: info, or a warning below HEARING_WARN."""
    if auc < HEARING_WARN:
        log.warning("hearing check: generic sounds added to this model's own held-back audio score ROC-AUC %.3f "
                    "(< %.2f): loud or varied background, expect missed events here (more normal audio, or the "
                    "busy-place options in docs/EVAL.md, may help)", auc, HEARING_WARN)
    else:
        log.info("hearing check: generic sounds added to held-back audio score ROC-AUC %.3f", auc)
