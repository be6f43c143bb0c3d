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
* with ``sfx_gauss: 1``, ``sfx_gauss_top`` / ``sfx_gauss``: each step's Mahalanobis distance to one
  Gaussian of all the normal training steps (covariance shrunk toward a multiple of the identity by
  the Ledoit-Wolf rule, so a few hundred steps of 512 features still give a well-conditioned one); the
  window's worst step / the mean over its steps. A density of the whole normal cloud rather than the
  distance to its nearest member: where the scene's own sounds vary, a step far from all of them in
  the directions they never move in scores high even when some normal step lies close by.

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

from streamad.config import ConfigError
from streamad.models.base import Progress, check_layout, whole_param
from streamad.models.frame_fullgmm import FrameFullGMM
from streamad.models.frames import sample_rows

SLICE = 64  # windows per CNN / front-end call
GAUSS_ROWS = 20000  # training steps the sfx_gauss Gaussian is fitted on (at most)


class FrameSFX(FrameFullGMM):
    name = "frame_sfx"
    input = "waveform"
    uses_context = True
    components = FrameFullGMM.components + ("sfx", "sfx_top", "sfx_gauss", "sfx_gauss_top")
    defaults: dict[str, Any] = {**FrameFullGMM.defaults, "sfx_bank": 4000, "sfx_precision": "float32",
                                "sfx_bands": 96, "sfx_gauss": 0}

    def __init__(self, **params: Any):
        super().__init__(**params)
        whole_param("sfx_bank", self.params["sfx_bank"], 1, "steps kept in the sound-effects feature bank, a whole number >= 1")
        if self.params["sfx_gauss"] not in (0, 1) or isinstance(self.params["sfx_gauss"], bool):
            raise ConfigError(f"model.params.sfx_gauss: 0 or 1 (the sfx_gauss components off / on), "
                              f"got {self.params['sfx_gauss']!r}")
        from streamad.models.sfx_net import check_bands, check_precision, require_weights

        check_precision(self.params["sfx_precision"])
        check_bands(self.params["sfx_bands"])
        require_weights()  # one-line ConfigError now, not at the first window, when the weights are missing
        self.frontend: Any = None
        self._sfx: Any = None
        self.sfx_bank: torch.Tensor | None = None
        self.gauss: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, whitening) of the steps
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
        if self.gauss is not None:
            self.gauss = (self.gauss[0].to(self.device), self.gauss[1].to(self.device))
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
        if self.params["sfx_gauss"]:  # 20 000 steps are plenty for 512 x 512 and bound the memory of long histories
            some = sample_rows(len(rows), GAUSS_ROWS, seed)
            self.gauss = shrunk_gaussian(rows[some] if some is not None else rows)
        else:
            self.gauss = None
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
            if self.gauss is not None:
                m = ((f.float() - self.gauss[0]) @ self.gauss[1]).norm(dim=2)  # Mahalanobis distance per step
                out["sfx_gauss"] = m.mean(1).double().cpu().numpy()
                out["sfx_gauss_top"] = m.max(1).values.double().cpu().numpy()
        return out

    def state(self) -> dict[str, torch.Tensor]:
        out = {**super().state(), "sfx.bank": self.sfx_bank.cpu().clone(), "sfx.gain": self.gain.clone()}
        if self.gauss is not None:
            out["sfx.gauss_mean"], out["sfx.gauss_whiten"] = self.gauss[0].cpu().clone(), self.gauss[1].cpu().clone()
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state(state)
        bank = state["sfx.bank"].float()
        if bank.dim() != 2 or bank.shape[1] != 512 or not len(bank):
            raise ValueError(f"frame_sfx: sfx.bank must be a non-empty (n, 512) matrix, got {tuple(bank.shape)}")
        self.sfx_bank, self.gain = bank.contiguous().to(self.device), state["sfx.gain"].float()
        self.gauss = None
        if self.params["sfx_gauss"]:  # a file without them (KeyError): files that do not match, as for the bank
            mean, whiten = state["sfx.gauss_mean"].float(), state["sfx.gauss_whiten"].float()
            if mean.shape != (512,) or whiten.shape != (512, 512):
                raise ValueError(f"frame_sfx: sfx.gauss_mean / sfx.gauss_whiten must be (512,) / (512, 512), "
                                 f"got {tuple(mean.shape)} / {tuple(whiten.shape)}")
            self.gauss = (mean.to(self.device), whiten.to(self.device))


def shrunk_gaussian(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, W) of one Gaussian over (n, d) ``rows``, its covariance shrunk toward its mean variance
    times the identity by the Ledoit-Wolf rule (sklearn.covariance.ledoit_wolf); W is the inverse
    Cholesky factor's transpose, so ``||(x - mean) @ W||`` is x's Mahalanobis distance. float32, on
    ``rows``' device."""
    from sklearn.covariance import ledoit_wolf

    x = rows.double().cpu().numpy()
    mean = x.mean(0)
    cov, _ = ledoit_wolf(x - mean, assume_centered=True)
    chol = torch.linalg.cholesky(torch.from_numpy(cov))
    eye = torch.eye(len(cov), dtype=torch.float64)
    whiten = torch.linalg.solve_triangular(chol, eye, upper=False).T  # (L^-1)^T: (x-m) W W^T (x-m)^T = Mahalanobis^2
    return torch.from_numpy(mean).float().to(rows.device), whiten.float().to(rows.device)
