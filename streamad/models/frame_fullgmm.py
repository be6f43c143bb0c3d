"""Frame-level full-covariance GMM: each time frame of a patch scored under a mixture.

Features per frame: the standardised log-mel spectrum (``C*H`` values), optionally with its
difference to the frame ``delta`` frames earlier (onsets). With ``floor`` > 0 every band is
clamped from below at its ``floor`` quantile over the training frames: a frame *quieter* than the
normal background (a fade-out, a drop-out, the silent side of a level jump or loop seam) then
looks like the quietest normal frames instead of an outlier, while events, which add energy,
are unchanged. Score components per window:

* ``nll``: mean frame NLL (stationary changes of the background's spectrum, long events);
* ``nll_top``: mean NLL of the worst ``top`` fraction of frames (short events are not
  averaged away over the window);
* ``nll_diag`` (only with ``diag_k`` > 0): mean frame NLL under a diagonal mixture of ``diag_k``
  components fitted on the same frames (the ``frame_gmm`` baseline), a combination of both;
* ``nll_local`` / ``nll_local_top`` (only with ``local_k`` > 0): mean / worst-``top`` frame NLL
  under a diagonal mixture of ``local_k`` components over *local contrast* features: each frame
  minus the per-band median of its window. The slow level changes of a busy background (a car
  passing, a crowd swelling) cancel out; what stands out from the next half-second does not;
* ``nn`` / ``nn_top`` (only with ``bank`` > 0): mean / worst-``top`` distance of each frame to the
  nearest of ``bank`` normal training frames (:class:`streamad.models.frame_knn.FrameBank`):
  no mixture shape to fit, so the many different sounds of a café or a street are each normal;
* ``band_top`` (only with ``band_top`` > 0): per frame, the mean of its ``band_top`` largest band
  deviations from the training frames' band median, in units of that band's median absolute
  deviation; the window's worst ``top`` fraction of frames averaged. The mixtures' NLL sums a
  frame's deviation over all bands, so an event that lifts a few bands above a loud background is
  diluted by the many bands it leaves alone; the largest few band deviations are not (a sum-type
  and a max-type statistic: each is the stronger test where the other is weak);
* ``exposure`` (only with ``exposure`` > 0 hidden units): the window's worst ``top`` fraction of
  frame logits of a small classifier (:class:`streamad.models.frame_exposure.FrameExposure`) trained
  on the same features plus local contrast, normal windows against labelled ones: the generic
  synthetic sounds of ``audio.train_synthetic`` mixed into the normal audio, and recorded anomalies
  (``streamad train --anomalies DIR``) when given. The mixtures never see the labelled windows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad.config import ConfigError
from streamad.models.base import Detector, Progress, TrainingError, batched, check_layout, whole_param
from streamad.models.frame_exposure import FrameExposure
from streamad.models.frame_knn import FrameBank, bank_size
from streamad.models.frames import (band_floor, band_scale, frame_features, frame_rows, largest, local_contrast,
                                    top_mean)
from streamad.models.fullgmm import FullGMM
from streamad.models.gmm import DiagGMM


class FrameFullGMM(Detector):
    name = "frame_fullgmm"
    components = ("nll", "nll_top", "nll_diag", "nll_local", "nll_local_top", "nn", "nn_top", "band_top", "exposure")
    labels = "optional"  # labelled windows train only the exposure classifier (none: they are dropped)
    patch_shape = None  # frame by frame: any number of mel bands and frames
    defaults: dict[str, Any] = {"k": 4, "iters": 60, "shrink": 0.1, "reg": 0.01, "delta": 0, "top": 0.125,
                                "max_frames": 16000, "diag_k": 0, "diag_iters": 100, "floor": 0.0,
                                "local_k": 0, "local_q": 0.5, "bank": 0, "band_top": 0,
                                "exposure": 0, "exposure_steps": 400}

    def __init__(self, **params: Any):
        super().__init__(**params)
        bank_size(self.params["bank"], 0)  # 0: no bank
        p = self.params
        for key, least in (("k", 1), ("iters", 1), ("diag_k", 0), ("diag_iters", 1), ("local_k", 0), ("delta", 0),
                           ("max_frames", 2)):
            whole_param(key, p[key], least, f"a whole number >= {least}")
        for key, ok, what in (("top", lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
                              ("floor", lambda v: 0 <= v < 1, "a quantile in [0, 1)"),
                              ("local_q", lambda v: 0 <= v <= 1, "a quantile in [0, 1]"),
                              ("shrink", lambda v: 0 <= v <= 1, "a weight in [0, 1]"),
                              ("reg", lambda v: v >= 0, "a number >= 0")):
            if not ok(p[key]):
                raise ConfigError(f"model.params.{key}: {what}, got {p[key]!r}")
        whole_param("band_top", self.params["band_top"], 0,
                    "bands per frame for the band_top component, a whole number >= 0 (0 = off)")
        whole_param("exposure", self.params["exposure"], 0,
                    "a whole number >= 0 (hidden units of the exposure classifier, 0 = off)")
        whole_param("exposure_steps", self.params["exposure_steps"], 1, "a whole number >= 1")
        self._moved: tuple | None = None  # (device, floor, mixtures, band) copied to a GPU (_parts)

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "FrameFullGMM":
        X, lab = self.training_rows(X, y)
        self._fit_patches(X, lab, seed)
        if progress:
            progress(1, 1, {})
        return self

    def _fit_patches(self, X: torch.Tensor, lab: torch.Tensor, seed: int) -> None:
        """Fit every part on checked patches ``X`` with labels ``lab`` (1 = labelled anomaly)."""
        p = self.params
        self._moved = None  # device copies of the previous fit's mixtures
        X = X.cpu().float()
        labelled, X = X[lab == 1], X[lab == 0]  # the mixtures and the floor see normal windows only
        if p["exposure"] > 0 and not len(labelled):
            raise TrainingError("frame_fullgmm: model.params.exposure needs labelled windows to train its "
                                "classifier: set audio.train_synthetic (generic synthetic sounds mixed into "
                                "the normal audio) or give recorded anomalies (streamad train --anomalies DIR)")
        self.lo = band_floor(X, p["floor"], seed)

        def feats(xb: torch.Tensor) -> torch.Tensor:
            return frame_features(xb, p["delta"], self.lo)

        def contrast(xb: torch.Tensor) -> torch.Tensor:
            return local_contrast(feats(xb), p["local_q"])

        # only the sampled frames are computed and kept (frame_rows), window batch by window batch
        self.bank = FrameBank(p["bank"], seed).fit(frame_rows(X, feats, p["bank"], seed)) if p["bank"] > 0 else None
        f = frame_rows(X, feats, p["max_frames"], seed)
        loc = frame_rows(X, contrast, p["max_frames"], seed) if p["local_k"] > 0 else None
        self.gmm = FullGMM(p["k"], p["iters"], p["shrink"], p["reg"], seed=seed).fit(f)
        self.diag = self._diag_mixture(p["diag_k"], f, seed)
        self.local = self._diag_mixture(p["local_k"], loc, seed)
        self.band = band_scale(f) if p["band_top"] > 0 else None
        self.exposure = (FrameExposure(p["exposure"], p["exposure_steps"], p["top"]).fit(
            X, labelled, self._exposure_features, seed, p["max_frames"]) if p["exposure"] > 0 else None)

    def _diag_mixture(self, k: int, f: torch.Tensor | None, seed: int) -> DiagGMM | None:
        """A diagonal mixture of ``k`` components fitted on frames ``f`` (None when k is 0),
        round-tripped through its state so it scores exactly as a loaded model does."""
        if k <= 0 or f is None:
            return None
        m = DiagGMM(k, self.params["diag_iters"], seed=seed).fit(f)
        m.load_state(m.state())
        return m

    def _exposure_features(self, xb: torch.Tensor, f: torch.Tensor | None = None) -> torch.Tensor:
        """(n, ...) windows -> (n, W, 2F) frame features and their local contrast (``f``: the frame
        features of ``xb`` when already made)."""
        if f is None:
            f = frame_features(xb, self.params["delta"], self.lo)
        return torch.cat([f, local_contrast(f, self.params["local_q"])], dim=2)

    @staticmethod
    def _frame_nll(mix: FullGMM | DiagGMM, f: torch.Tensor) -> torch.Tensor:
        """(N, W, F) frame features -> (N, W) frame NLL under ``mix``."""
        return mix.nll(f.reshape(-1, f.shape[2])).reshape(f.shape[:2])

    @torch.no_grad()
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        check_layout(X, self.name, self.input, self.patch_shape)
        return self._patch_components(X)

    def to(self, device: torch.device | str) -> "FrameFullGMM":
        super().to(device)
        self._moved = None
        return self

    def _parts(self) -> tuple:
        """(device, floor, gmm, diag, local, band) to score with: the mixtures on the scoring device
        (copies made once per device; the CPU uses the fitted ones), except with a frame bank or an
        exposure classifier, which score on the CPU."""
        if self.device.type == "cpu" or self.bank is not None or self.exposure is not None:
            return torch.device("cpu"), self.lo, self.gmm, self.diag, self.local, self.band
        if self._moved is None or self._moved[0] != self.device:
            self._moved = self._copies(self.device)
        return self._moved

    def _copies(self, dev: torch.device) -> tuple:
        """The floor, mixtures and band statistics copied to ``dev``, each exactly as a loaded model holds them."""

        def mix(m: FullGMM | DiagGMM | None) -> FullGMM | DiagGMM | None:
            if m is None:
                return None
            c = FullGMM(m.k, m.iters, m.shrink, m.reg) if isinstance(m, FullGMM) else DiagGMM(m.k, m.iters)
            c.load_state({k: v.to(dev) for k, v in m.state().items()})
            return c

        band = None if self.band is None else (self.band[0].to(dev), self.band[1].to(dev))
        return dev, None if self.lo is None else self.lo.to(dev), mix(self.gmm), mix(self.diag), mix(self.local), band

    def _patch_components(self, X: torch.Tensor, parts: tuple | None = None) -> dict[str, np.ndarray]:
        """Score components of checked patches ``X``, on the scoring device (``parts``: ``_parts()``)."""
        dev, lo, gmm, diag, local, band = parts or self._parts()
        out: dict[str, list[torch.Tensor]] = {"nll": [], "nll_top": []}
        if self.diag is not None:
            out["nll_diag"] = []
        if self.local is not None:
            out["nll_local"], out["nll_local_top"] = [], []
        if self.bank is not None:
            out["nn"], out["nn_top"] = [], []
        if self.band is not None:
            out["band_top"] = []
        if self.exposure is not None:
            out["exposure"] = []
        # float32 whatever worker.precision says (float16 is for networks: the mixtures' sums overflow
        # in it); a GPU takes larger batches: 256 windows of 32 frames are too few to fill it
        with torch.autocast(dev.type, enabled=False):
            for xb in batched(X, 256 if dev.type == "cpu" else 4096):
                f = frame_features(xb.to(dev).float(), self.params["delta"], lo)  # once per batch
                nll = self._frame_nll(gmm, f)
                out["nll"].append(nll.mean(1))
                out["nll_top"].append(top_mean(nll, self.params["top"]))
                if diag is not None:
                    out["nll_diag"].append(self._frame_nll(diag, f).mean(1))
                if local is not None:
                    lnll = self._frame_nll(local, local_contrast(f, self.params["local_q"]))
                    out["nll_local"].append(lnll.mean(1))
                    out["nll_local_top"].append(top_mean(lnll, self.params["top"]))
                if self.bank is not None:
                    d = self.bank.nearest(f)
                    out["nn"].append(d.mean(1))
                    out["nn_top"].append(top_mean(d, self.params["top"]))
                if band is not None:
                    z = (f - band[0]) / band[1]
                    m = min(self.params["band_top"], z.shape[2])
                    out["band_top"].append(top_mean(largest(z, m, 2).mean(2), self.params["top"]))
                if self.exposure is not None:
                    out["exposure"].append(self.exposure.window_logit(self._exposure_features(xb, f)))
        return {c: torch.cat(v).double().cpu().numpy() for c, v in out.items()}

    def state(self) -> dict[str, torch.Tensor]:
        out = self.gmm.state()
        if self.lo is not None:
            out["floor"] = self.lo.clone()
        for prefix, m in (("diag", self.diag), ("local", self.local)):
            if m is not None:
                out.update({f"{prefix}.{k}": v for k, v in m.state().items()})
        if self.bank is not None:
            out.update(self.bank.state())
        if self.band is not None:
            out["band.median"], out["band.mad"] = self.band[0].clone(), self.band[1].clone()
        if self.exposure is not None:
            out.update({f"exposure.{k}": v for k, v in self.exposure.state().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self._moved = None
        self.gmm = FullGMM(self.params["k"], self.params["iters"], self.params["shrink"], self.params["reg"])
        self.gmm.load_state({k: v for k, v in state.items() if k in ("logw", "mu", "whiten", "logdet")})
        self.lo = state["floor"].float() if "floor" in state else None
        self.diag = self._load_diag(state, "diag", self.params["diag_k"])
        self.local = self._load_diag(state, "local", self.params["local_k"])
        self.bank = FrameBank(self.params["bank"]).load_state(state) if self.params["bank"] > 0 else None
        # a file without them (KeyError) is reported by AnomalyModel.load as files that do not match
        self.band = (state["band.median"].float(), state["band.mad"].float()) if self.params["band_top"] > 0 else None
        self.exposure = (FrameExposure(self.params["exposure"], self.params["exposure_steps"], self.params["top"]).load_state(
            {k[9:]: v for k, v in state.items() if k.startswith("exposure.")}) if self.params["exposure"] > 0 else None)

    def _load_diag(self, state: dict[str, torch.Tensor], prefix: str, k: int) -> DiagGMM | None:
        if k <= 0:
            return None
        m = DiagGMM(k, self.params["diag_iters"])
        m.load_state({key[len(prefix) + 1:]: v for key, v in state.items() if key.startswith(prefix + ".")})
        return m
