"""The detector interface every model implements.

A detector sees float32 tensors ``X`` and knows nothing of audio, Kafka or thresholds.
``X`` is one of three layouts, fixed by the front end:

* patches ``(N, C, 32, 32)``: audio log-mel, series patches, images (MNIST padded to 32x32);
* feature vectors ``(N, D)``: rows of a table (``kind: tabular``);
* raw waveforms ``(N, 1, samples)``: only for detectors that declare ``input = "waveform"``
  (the audio front end then hands over the raw windows instead of log-mel patches, see
  :meth:`streamad.pipeline.AnomalyModel.patches`).

Contract:

* ``__init__(**params)`` only stores hyper-parameters (JSON-able); an unknown one is a
  ``ConfigError`` naming ``model.params.X``.
* ``fit(X, y=None, *, seed=0, progress=None, checkpoint=None)`` learns from ``X``. ``y`` is
  optional (N,) int labels: 1 = a known anomaly (labelled anomaly / outlier exposure),
  0 = normal or unlabelled. Unsupervised detectors drop the y == 1 rows; semi-supervised
  ones (``labels = "optional"``) use them when present; supervised ones
  (``labels = "required"``) raise a one-line ``TrainingError`` without any.
* ``score_components(X)`` -> dict of 1-D float64 arrays, higher = more anomalous. The
  calibrator (streamad.calibrate) standardises and combines them; ``primary`` names the
  component the detector's paper scores with (benchmarks use it; None = combine all).
* ``state()`` / ``load_state(state)``: a flat ``dict[str, Tensor]`` so model files load with
  ``torch.load(weights_only=True)``; nothing is pickled.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from streamad.config import ConfigError

Progress = Callable[[int, int, dict[str, float]], None]


def whole_param(key: str, value: Any, least: int, what: str) -> int:
    """``model.params.<key>`` as a whole number >= ``least``, else a one-line ConfigError
    ``model.params.<key>: <what>, got <value>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"model.params.{key}: {what}, got {value!r}")
    return value


def _check_param_type(key: str, value: Any, default: Any) -> None:
    """``model.params.<key>`` of the kind its default is (a whole number, a finite number, true/false,
    text), else a one-line ConfigError; parameters whose default is None or a list are the
    detector's own to check."""
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        what = "a finite number"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "text"
    else:
        return
    if not ok:
        raise ConfigError(f"model.params.{key}: {what}, got {value!r}")


class TrainingError(RuntimeError):
    pass


class Detector(ABC):
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    input: ClassVar[str] = "patches"  # "patches" (patches or feature vectors) | "waveform"
    # a waveform detector that takes each window with the audio.context_s before it (the context first)
    uses_context: ClassVar[bool] = False
    labels: ClassVar[str] = "ignored"  # "ignored" | "optional" | "required" (what y == 1 rows do)
    primary: ClassVar[str | None] = None  # the paper's anomaly score among the components
    # patches must be (N, C, 32, 32); None: any (N, C, H, W), for detectors that score frame by frame
    patch_shape: ClassVar[tuple[int, int] | None] = (32, 32)

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            from streamad.config import ConfigError

            raise ConfigError(f"model.params.{sorted(unknown)[0]}: unknown parameter for detector "
                              f"{self.name!r} (known: {', '.join(sorted(self.defaults)) or 'none'})")
        for key, value in params.items():
            _check_param_type(key, value, self.defaults[key])
        self.params = {**self.defaults, **params}
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "Detector":
        self.device = torch.device(device)
        return self

    @abstractmethod
    def fit(self, X: torch.Tensor, y: torch.Tensor | np.ndarray | None = None, *, seed: int = 0,
            progress: Progress | None = None, checkpoint: Path | None = None) -> "Detector":
        ...

    @abstractmethod
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        ...

    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        ...

    @abstractmethod
    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        ...

    def reconstruct(self, X: torch.Tensor) -> torch.Tensor | None:
        """Reconstruction of X for residual plots (None when the model has none)."""
        return None

    # -- shared input handling -----------------------------------------------------
    def training_rows(self, X: torch.Tensor, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Check X / y and apply this detector's label policy -> (X, y as int64 tensor)."""
        check_layout(X, self.name, self.input, self.patch_shape)
        lab = as_labels(y, len(X))
        if self.labels == "ignored":
            keep = lab == 0
            X, lab = X[keep], lab[keep]
        elif self.labels == "required" and not bool((lab == 1).any()):
            raise TrainingError(f"detector {self.name!r} is supervised: it needs labelled anomalies "
                                "(y == 1 rows; `streamad train --anomalies DIR`), and got none")
        if int((lab == 0).sum()) < 2:
            raise TrainingError(f"detector {self.name!r}: need at least 2 normal training rows, got "
                                f"{int((lab == 0).sum())}")
        return X, lab


def as_labels(y: Any, n: int) -> torch.Tensor:
    if y is None:
        return torch.zeros(n, dtype=torch.int64)
    lab = torch.as_tensor(np.asarray(y)).to(torch.int64).flatten()
    if len(lab) != n:
        raise TrainingError(f"labels: {len(lab)} labels for {n} training rows")
    if bool(((lab != 0) & (lab != 1)).any()):
        raise TrainingError("labels: y must be 0 (normal / unlabelled) or 1 (known anomaly)")
    return lab


def check_layout(X: torch.Tensor, name: str, want: str, patch: tuple[int, int] | None = (32, 32)) -> None:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        raise TrainingError(f"detector {name!r}: X must be a float tensor")
    if want == "waveform":
        if X.dim() != 3 or X.shape[1] != 1:
            raise TrainingError(f"detector {name!r} scores raw waveforms (N, 1, samples) and only works "
                                f"with kind: audio; got input of shape {tuple(X.shape)}")
    elif not (X.dim() == 2 or (X.dim() == 4 and (patch is None or tuple(X.shape[2:]) == patch))):
        shape = "H, W" if patch is None else ", ".join(map(str, patch))
        raise TrainingError(f"detector {name!r}: X must be patches (N, C, {shape}) or feature vectors "
                            f"(N, D); got shape {tuple(X.shape)}")


def flat(X: torch.Tensor) -> np.ndarray:
    """(N, ...) tensor -> (N, D) float64 array (patches are flattened)."""
    return X.detach().cpu().reshape(len(X), -1).double().numpy()


def batched(X: torch.Tensor, size: int):
    for i in range(0, len(X), size):
        yield X[i:i + size]
