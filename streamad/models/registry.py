"""Detector registry: name -> class. A new detector is one module plus one line here."""
from __future__ import annotations

from typing import Any

from streamad.config import ConfigError
from streamad.models.base import Detector
from streamad.models.frame_gmm import FrameGMM
from streamad.models.gmgan import GMGAN, ConvAE, GANomaly

DETECTORS: dict[str, type[Detector]] = {
    GMGAN.name: GMGAN,
    GANomaly.name: GANomaly,
    ConvAE.name: ConvAE,
    FrameGMM.name: FrameGMM,
}


def create(name: str, params: dict[str, Any] | None = None) -> Detector:
    if name not in DETECTORS:
        raise ConfigError(f"model.detector: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name](**(params or {}))
