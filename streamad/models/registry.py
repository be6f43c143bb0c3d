"""Detector registry: name -> class. A new detector is one module plus one line here."""
from __future__ import annotations

from typing import Any

from streamad.config import ConfigError
from streamad.models.alad import ALAD
from streamad.models.anogan import AnoGAN
from streamad.models.base import Detector
from streamad.models.bce import BCEClassifier
from streamad.models.dagmm import DAGMM
from streamad.models.dcae import DCAE
from streamad.models.deepsad import DeepSAD
from streamad.models.deepsvdd import DeepSVDD
from streamad.models.dsebm import DSEBM
from streamad.models.egbad import EGBAD
from streamad.models.frame_fullgmm import FrameFullGMM
from streamad.models.frame_gmm import FrameGMM
from streamad.models.geotrans import GeoTrans
from streamad.models.gmgan import GMGAN, ConvAE, GANomaly
from streamad.models.hsc import HSC
from streamad.models.iforest import IsolationForestDetector
from streamad.models.kde import KDEDetector
from streamad.models.knn import KNNDetector
from streamad.models.lof import LOFDetector
from streamad.models.mixture import GMMDetector
from streamad.models.ocsvm import OCSVMDetector
from streamad.models.pca import PCADetector
from streamad.models.vae import VAE
from streamad.models.wavenet import WaveNetPredictor

DETECTORS: dict[str, type[Detector]] = {
    GMGAN.name: GMGAN,
    GANomaly.name: GANomaly,
    ConvAE.name: ConvAE,
    FrameGMM.name: FrameGMM,
    FrameFullGMM.name: FrameFullGMM,
    PCADetector.name: PCADetector,
    GMMDetector.name: GMMDetector,
    KDEDetector.name: KDEDetector,
    IsolationForestDetector.name: IsolationForestDetector,
    OCSVMDetector.name: OCSVMDetector,
    KNNDetector.name: KNNDetector,
    LOFDetector.name: LOFDetector,
    DCAE.name: DCAE,
    VAE.name: VAE,
    AnoGAN.name: AnoGAN,
    EGBAD.name: EGBAD,
    ALAD.name: ALAD,
    DAGMM.name: DAGMM,
    DSEBM.name: DSEBM,
    DeepSVDD.name: DeepSVDD,
    DeepSAD.name: DeepSAD,
    HSC.name: HSC,
    GeoTrans.name: GeoTrans,
    BCEClassifier.name: BCEClassifier,
    WaveNetPredictor.name: WaveNetPredictor,
}


def create(name: str, params: dict[str, Any] | None = None) -> Detector:
    if name not in DETECTORS:
        raise ConfigError(f"model.detector: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name](**(params or {}))
