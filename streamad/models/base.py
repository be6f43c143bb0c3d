"""The detector interface every model implements.

A detector sees standardised patches ``X`` of shape (N, C, H, W) (float32 tensors)
and knows nothing of audio, Kafka or thresholds:

* ``__init__(**params)`` only stores hyper-parameters (JSON-able).
* ``fit(X, seed, progress)`` learns from normal patches; fitted state lives in
  tensors returned by ``state()``.
* ``score_components(X)`` -> dict of 1-D arrays, higher = more anomalous.
  The calibrator (streamad.calibrate) standardises and combines them.
* ``state()`` / ``load_state(state)``: a flat ``dict[str, Tensor]`` so model files
  load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import numpy as np
import torch

Progress = Callable[[int, int, dict[str, float]], None]


class TrainingError(RuntimeError):
    pass


class Detector(ABC):
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            from streamad.config import ConfigError

            raise ConfigError(f"model.params.{sorted(unknown)[0]}: unknown parameter for detector "
                              f"{self.name!r} (known: {', '.join(sorted(self.defaults)) or 'none'})")
        self.params = {**self.defaults, **params}
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "Detector":
        self.device = torch.device(device)
        return self

    @abstractmethod
    def fit(self, X: torch.Tensor, seed: int = 0, progress: Progress | None = None) -> "Detector":
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


def batched(X: torch.Tensor, size: int):
    for i in range(0, len(X), size):
        yield X[i:i + size]
