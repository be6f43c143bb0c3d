"""Detector registry: name -> class. A new detector is one module plus one line here.

Entries name their module and class as text and are imported on first use, so listing the
detectors (``streamad detectors``, ``--help``, the argument parser's choices) costs no torch or
scikit-learn import (seconds on a small box); looking one up imports only its own module.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from streamad.config import ConfigError

if TYPE_CHECKING:
    from streamad.models.base import Detector

# name: "module (under streamad.models):class"; the name must equal the class's ``name``.
ENTRIES: dict[str, str] = {
    "gmgan": "gmgan:GMGAN",
    "ganomaly": "gmgan:GANomaly",
    "cae": "gmgan:ConvAE",
    "frame_gmm": "frame_gmm:FrameGMM",
    "frame_fullgmm": "frame_fullgmm:FrameFullGMM",
    "frame_knn": "frame_knn:FrameKNN",
    "frame_sfx": "frame_sfx:FrameSFX",
    "pca": "pca:PCADetector",
    "gmm": "mixture:GMMDetector",
    "kde": "kde:KDEDetector",
    "iforest": "iforest:IsolationForestDetector",
    "ocsvm": "ocsvm:OCSVMDetector",
    "knn": "knn:KNNDetector",
    "lof": "lof:LOFDetector",
    "dcae": "dcae:DCAE",
    "vae": "vae:VAE",
    "anogan": "anogan:AnoGAN",
    "egbad": "egbad:EGBAD",
    "alad": "alad:ALAD",
    "dagmm": "dagmm:DAGMM",
    "dsebm": "dsebm:DSEBM",
    "deepsvdd": "deepsvdd:DeepSVDD",
    "deepsad": "deepsad:DeepSAD",
    "hsc": "hsc:HSC",
    "geotrans": "geotrans:GeoTrans",
    "bce": "bce:BCEClassifier",
    "wavenet": "wavenet:WaveNetPredictor",
}


class _Registry(Mapping[str, "type[Detector]"]):
    """A read-only mapping name -> detector class that imports each module when first asked."""

    def __getitem__(self, name: str) -> type[Detector]:
        module, cls = ENTRIES[name].split(":")
        return getattr(importlib.import_module(f"streamad.models.{module}"), cls)

    def __contains__(self, name: object) -> bool:
        return name in ENTRIES

    def __iter__(self) -> Iterator[str]:
        return iter(ENTRIES)

    def __len__(self) -> int:
        return len(ENTRIES)


DETECTORS: Mapping[str, type[Detector]] = _Registry()


def create(name: str, params: dict[str, Any] | None = None) -> Detector:
    if name not in DETECTORS:
        raise ConfigError(f"model.detector: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name](**(params or {}))
