"""Checks of a model directory before it is used: every field of ``model.json``, the weights'
hash, finite tensors, the calibration against the detector's score components, and a dry run.

Each check raises ``ValueError`` with a one-line reason that names the field
(``calibration.threshold: must be a finite number, got 'high'``); ``model.py`` turns it into a
``ModelFileError`` naming the file, which the CLI prints as ``streamad: error: ...`` (exit 2).
So a model that would fail at the first window (a string threshold, a zero scale, tensors of
the wrong shape) or silently (a NaN threshold: never alerts; an unknown score weight) is
refused at start-up, and by the hot reload before it replaces the running model.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad.errors import described

_HEX12 = re.compile(r"^[0-9a-f]{12}$")


# what a model's version identifies besides its weights: everything in model.json that changes a score or an alert
VERSIONED = ("detector", "params", "config", "frontend", "calibration")


def version_digest(meta: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the weights' hash and the model.json fields that decide its
    scores and alerts (``VERSIONED``), as JSON with sorted keys: a model recalibrated on the same
    weights (another threshold) is another version. ``meta`` as read back from model.json."""
    part = {"weights_sha256_12": meta.get("weights_sha256_12"), **{k: meta.get(k) for k in VERSIONED}}
    blob = json.dumps(part, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def version_of(meta: dict[str, Any]) -> str:
    """The ``model_version`` a model.json's content gives: ``<detector>-<version_digest>``. A tool that
    edits a model's calibration on purpose (``streamad bench`` sets its own threshold) stamps the
    edited file with it, so the result is a version of its own."""
    return f"{meta['detector']}-{version_digest(meta)}"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_meta(meta: Any) -> None:
    """The top-level fields of model.json (types; format is checked by the loader)."""
    if not isinstance(meta, dict):
        raise ValueError("expected a JSON object")
    for key, tp in (("detector", str), ("model_version", str), ("params", dict), ("config", dict),
                    ("weights_sha256_12", str)):
        if key not in meta:
            raise ValueError(f"{key}: missing")
        if not isinstance(meta[key], tp):
            raise ValueError(f"{key}: expected {tp.__name__}, got {meta[key]!r:.60}")
    digest = meta["weights_sha256_12"]
    if not _HEX12.match(digest):
        raise ValueError(f"weights_sha256_12: expected 12 hex digits, got {digest!r:.40}")
    legacy = f"{meta['detector']}-{digest}"  # files written before versions covered the calibration
    if meta["model_version"] not in (version_of(meta), legacy):
        raise ValueError(f"model_version: {meta['model_version']!r:.60} does not match the detector, weights, "
                         "config and calibration of this model.json (edited by hand? retrain instead)")
    if not isinstance(meta.get("calibration"), dict):
        raise ValueError("calibration: missing (the model is not calibrated)")


def check_weights_hash(weights: Path, meta: dict[str, Any]) -> None:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    if digest != meta["weights_sha256_12"]:
        raise ValueError(f"weights do not match their recorded hash (sha256 {digest}..., model.json records "
                         f"{meta['weights_sha256_12']}): a changed or corrupt weights.pt")


def check_tensors(state: dict[str, torch.Tensor]) -> None:
    for k, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"tensor {k!r} holds NaN or infinite values")


def _finite_map(d: Any, key: str, positive: bool = False) -> dict[str, float]:
    if not isinstance(d, dict):
        raise ValueError(f"{key}: expected an object of component: number, got {d!r:.60}")
    for k, v in d.items():
        if not _number(v) or not math.isfinite(v):
            raise ValueError(f"{key}.{k}: must be a finite number, got {v!r:.40}")
        if positive and v <= 0:
            raise ValueError(f"{key}.{k}: must be > 0, got {v!r}")
    return d


def check_calibration(cal: dict[str, Any]) -> None:
    """Field by field, before ``Calibration.from_dict`` builds it."""
    thr = cal.get("threshold")
    if not _number(thr) or not math.isfinite(thr):
        raise ValueError(f"calibration.threshold: must be a finite number, got {thr!r:.40}")
    _finite_map(cal.get("center"), "calibration.center")
    _finite_map(cal.get("scale"), "calibration.scale", positive=True)
    w = _finite_map(cal.get("weights"), "calibration.weights")
    if any(v < 0 for v in w.values()) or not any(v > 0 for v in w.values()):
        raise ValueError("calibration.weights: must be >= 0 with at least one > 0")
    k, n = cal.get("min_windows", 1), cal.get("of_windows", 1)
    for key, v in (("min_windows", k), ("of_windows", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"calibration.{key}: must be an integer >= 1, got {v!r:.40}")
    if k > n:
        raise ValueError(f"calibration.min_windows: must be <= calibration.of_windows ({n}), got {k}")
    for key in ("hop_s", "target_false_alerts_per_hour"):
        v = cal.get(key, 1.0)
        if not _number(v) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"calibration.{key}: must be a number > 0, got {v!r:.40}")


def check_components(cal: dict[str, Any], components: set[str]) -> None:
    """Score weights name components the detector produces; each weighted one has a centre and scale."""
    for key in ("weights", "center", "scale"):
        unknown = sorted(set(cal[key]) - components)
        if unknown:
            raise ValueError(f"calibration.{key}.{unknown[0]}: unknown score component "
                             f"(the detector gives {', '.join(sorted(components))})")
    for k, w in cal["weights"].items():
        if w and (k not in cal["center"] or k not in cal["scale"]):
            raise ValueError(f"calibration: weighted component {k!r} has no centre/scale")


def dry_run(model: Any, window_shape: tuple[int, ...], cal: dict[str, Any]) -> None:
    """Score a silent and a faint-noise window: the components must fit the calibration
    (:func:`check_components`) and every score must be finite."""
    rng = np.random.default_rng(0)
    raw = np.stack([np.zeros(window_shape, dtype=np.float32),
                    (0.01 * rng.standard_normal(window_shape)).astype(np.float32)])
    try:
        comps = model.components(raw)
    except Exception as e:  # wrong tensor shapes surface here
        raise ValueError(f"scoring a test window failed ({described(e)}); "
                         f"tensors that do not match the detector?") from None
    check_components(cal, set(comps))
    scores = model.calibration.combine(comps)
    if not np.all(np.isfinite(np.asarray(scores, dtype=np.float64))):
        raise ValueError("scoring a test window gave a non-finite score")
