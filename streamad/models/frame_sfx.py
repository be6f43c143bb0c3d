"""``frame_sfx``: the audio default's frame mixtures plus what a pretrained sound-effects CNN hears.

Every component of ``frame_fullgmm`` is a density of this scene's own log-mel frames, learned from
a few minutes of it: in a café or a street an added sound moves a frame in directions the scene
itself moves in all the time. A network trained on many thousand labelled sound effects
(:mod:`streamad.models.sfx_net`, aiSFX's weights, not trained here) maps audio to features in which
a bark, a knock or breaking glass differ from chatter and traffic even when they are quieter. This
detector takes the raw windows (``input = "waveform"``), makes the pipeline's log-mel patches for the
``frame_fullgmm`` part (same parameters, same components), and adds:

* ``sfx_top``: the CNN's 512-d feature of each ~186 ms step of the window compared with a bank of
  ``sfx_bank`` steps sampled from the normal training windows (cosine distance to the nearest);
  the window's worst step. ``sfx``: the mean over its steps.

With ``audio.context_s`` (e.g. 0.5) the CNN also hears the half-second before the window, as it
would in a continuous recording (its receptive field is about 1.4 s; a window alone is heard against
silence), and only the window's own steps are scored.

Before the CNN every window is scaled by one gain fixed at training (0.5 / the largest absolute
sample of the normal training audio), so a scene's level reaches the network as in training and
the same gain applies to everything scored later. Costs: the CNN is about 1.7 GFLOP per 1 s
window (about 60 windows/s on one CPU thread in float32, 130 with ``sfx_precision: bfloat16`` on a
CPU with bf16 support, the CNN's weights in channels-last layout there; ``sfx_bands: 72`` about 1.3x
that; a GPU makes it cheap); the bank is ``sfx_bank`` x 512 floats in the model file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad.models.base import Progress, check_layout, whole_param
from streamad.models.frame_fullgmm import FrameFullGMM
from streamad.models.frames import sample_rows

SLICE = 64  # windows per CNN / front-end call


class FrameSFX(FrameFullGMM):
    name = "frame_sfx"
    input = "waveform"
    uses_context = True
    components = FrameFullGMM.components + ("sfx", "sfx_top")
    defaults: dict[str, Any] = {**FrameFullGMM.defaults, "sfx_bank": 4000, "sfx_precision": "float32",
                                "sfx_bands": 96}

    def __init__(self, **params: Any):
        super().__init__(**params)
        whole_param("sfx_bank", self.params["sfx_bank"], 1, "steps kept in the sound-effects feature bank, a whole number >= 1")
        from streamad.models.sfx_net import check_bands, check_precision, require_weights

        check_precision(self.params["sfx_precision"])
        check_bands(self.params["sfx_bands"])
        require_weights()  # one-line ConfigError now, not at the first window, when the weights are missing
        self.frontend: Any = None
        self._sfx: Any = None
        self.sfx_bank: torch.Tensor | None = None
        self.gain: torch.Tensor | None = None

    def attach_frontend(self, frontend: Any) -> None:
        """The pipeline's log-mel front end (AnomalyModel gives it): the patches of the mixtures. (A
        non-audio pipeline is refused where every waveform detector is: AnomalyModel's input switch.)"""
        self.frontend = frontend
        self._sfx = None

    def _front(self) -> Any:
        if self.frontend is None:  # used on its own (no AnomalyModel): the default audio front end
            from streamad.config import AudioConfig
            from streamad.windows.audio import LogMelFrontend

            self.frontend = LogMelFrontend(AudioConfig())
        return self.frontend

    def _features(self) -> Any:
        if self._sfx is None:
            from streamad.models.sfx_net import SFXFeatures

            self._sfx = SFXFeatures(self._front().sr, self.params["sfx_precision"],
                                    self.params["sfx_bands"]).to(self.device)
        return self._sfx

    def to(self, device: torch.device | str) -> "FrameSFX":
        super().to(device)
        if self._sfx is not None:
            self._sfx.to(self.device)
        if self.sfx_bank is not None:  # beside the CNN's features: no copy per scored batch
            self.sfx_bank = self.sfx_bank.to(self.device)
        return self

    def _patches(self, X: torch.Tensor, host: bool = True) -> torch.Tensor:
        """The log-mel patches of raw windows ``X``, made on the scoring device; in host memory for
        training (``host``: all training windows at once), left on the device for scoring, where
        the mixtures score them (no copy to the host and back per batch)."""
        fe = self._front()
        place = torch.device("cpu") if host else self.device
        return torch.cat([fe.transform(X[i:i + SLICE, 0].to(self.device)).to(place) for i in range(0, len(X), SLICE)])

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "FrameSFX":
        X, lab = self.training_rows(X, y)
        normal = X[lab == 0]
        peak = float(normal.abs().max())
        self.gain = torch.tensor(0.5 / peak if peak > 0 else 1.0)
        self._fit_patches(self._patches(X), lab, seed)
        with torch.no_grad():
            rows = self._steps(normal).reshape(-1, 512)
        pick = sample_rows(len(rows), self.params["sfx_bank"], seed)
        self.sfx_bank = (rows[pick] if pick is not None else rows).contiguous().clone()  # on self.device
        if progress:
            progress(1, 1, {})
        return self

    def _steps(self, X: torch.Tensor) -> torch.Tensor:
        """(N, 1, samples) -> (N, steps, 512) unit-length CNN features of the gained windows: the CNN
        hears the window's context too (``audio.context_s``), only the window's own steps are kept
        (the last ones, as many as the window alone gives)."""
        sfx, gain, fe = self._features(), float(self.gain), self._front()
        k = sfx.steps_of(fe.window - fe.lead)
        out = [sfx(X[i:i + SLICE, 0].to(self.device) * gain)[:, -k:] for i in range(0, len(X), SLICE)]
        f = torch.cat(out)
        return f / f.norm(dim=2, keepdim=True).clamp_min(1e-9)

    @torch.no_grad()
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        check_layout(X, self.name, self.input, self.patch_shape)
        # worker.precision's autocast does not reach in here: the log-mel front end and the mixtures are
        # float32, the CNN's precision is model.params.sfx_precision (float16 overflowed in it: NaN
        # scores, seen on an H200)
        with torch.autocast(self.device.type, enabled=False):
            out = self._patch_components(self._patches(X, host=False))
            f = self._steps(X)
            d = 1.0 - (f.reshape(-1, f.shape[2]) @ self.sfx_bank.T).max(dim=1).values.reshape(f.shape[:2])
        out["sfx"] = d.mean(1).double().cpu().numpy()
        out["sfx_top"] = d.max(1).values.double().cpu().numpy()
        return out

    def state(self) -> dict[str, torch.Tensor]:
        return {**super().state(), "sfx.bank": self.sfx_bank.cpu().clone(), "sfx.gain": self.gain.clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state(state)
        bank = state["sfx.bank"].float()
        if bank.dim() != 2 or bank.shape[1] != 512 or not len(bank):
            raise ValueError(f"frame_sfx: sfx.bank must be a non-empty (n, 512) matrix, got {tuple(bank.shape)}")
        self.sfx_bank, self.gain = bank.contiguous().to(self.device), state["sfx.gain"].float()
