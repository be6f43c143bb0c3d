"""Numeric-series front end: windows of readings (B, window, C) -> 32x32 patches.

Mirrors :class:`streamad.windows.audio.LogMelFrontend`: ``window``/``hop`` are in
readings, ``rate`` is ``cfg.rate_hz``; ``fit`` learns statistics from training
windows and ``transform`` uses torch ops only, so it runs on the scoring device.
Given the same fitted state, a window always maps to the same patch (no
randomness; CPU and GPU agree to float rounding).

Per-channel normalisation (both representations)
-------------------------------------------------
``fit`` learns a robust centre and scale per channel from all training readings:
centre = median, scale = IQR / 1.349. A channel whose IQR is zero (quantised or
almost constant) falls back to its standard deviation; a channel that is
constant in training gets ``max(1 % of |centre|, 1e-3)``, so any later change of
it is visible but finite. Readings are mapped to ``z = (x - centre) / scale``;
NaN becomes 0 (the centre) and +-inf become +-1e6 before compression.

"patch" representation (default; good for level shifts and slow sensors)
--------------------------------------------------------------------------
The 32 rows are shared among the channels: with C <= 32 channels, row ``r``
shows channel ``floor(r * C / 32)``, so each channel owns a block of
``R = 32 // C`` or ``32 // C + 1`` rows (8 channels -> 4 rows each, 1 channel
-> all 32). With 1 to 4 channels (blocks of 8 or more rows) the rows of a
block are a delay embedding (Hankel / trajectory matrix) of that channel: row
``k`` of the block samples the channel over the reading positions
``k * d + j * s / 31`` for columns ``j = 0..31``, where the rows together are
lagged over half the window (``d = (window - 1) / 2 / (R - 1)``, each row spans
``s = (window - 1) / 2`` readings). With 5 or more channels every row of a
block spans the whole window (no lag: the block repeats the channel at full
time resolution; on SKAB this beat the lagged layout, see the experiment notes
in ``configs/sensor.yaml``). ``cfg.lag_fraction`` (when the config has it)
overrides the automatic choice (0 = no lag). Positions fall between readings, so values are
linearly interpolated; when a column step exceeds 1.5 readings the channel is
first smoothed with a centred moving average of about one column step (anti-
aliasing: a short spike still shows in a column). Level shifts keep their
size (values are the normalised readings, softly compressed: linear up to
|z| = 5, logarithmic beyond, ``sign(z) * (5 + log1p(|z| - 5))``), shapes show
as diagonal structure, and cross-channel relations as relations between
blocks. More than 32 channels are averaged in 32 contiguous groups (one row
each).

"spectrogram" representation (good for rhythm, e.g. ECG)
---------------------------------------------------------
Each channel's normalised window is cut into 32 evenly spaced Hann-windowed
frames of ``n_fft`` readings (``n_fft`` = the largest power of two <= window /
4, at least 4 and at most the window); the power spectrum of each frame is
pooled by triangular filters centred on log-spaced frequencies from bin 1 (the
DC bin is left out, so the spectrogram ignores the level) to Nyquist, and
turned into dB. The rows are shared among channels exactly as for "patch" (two
channels -> 16 log-frequency bands each). ``fit`` then learns per-row mean and
standard deviation (floored at 0.5 dB) over the training windows, as the audio
front end does per mel band.

"beats" representation (heart signals: premature beats, pauses, changed beats)
--------------------------------------------------------------------------------
Seven features of the beat nearest the window's centre against its neighbours and the
training beats (timing, QRS energy, shape), standardised: feature vectors (N, 7) instead of
patches, for the vector detectors (e.g. ``gmm``). See :mod:`streamad.windows.series_beats`.

Window lengths other than 32 work for patch and spectrogram: time is resampled to 32 columns
(interpolated above 32 readings per row span, after moving-average smoothing
when decimating).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from streamad.config import SeriesConfig
from streamad.stats import robust_center_scale
from streamad.windows.series_beats import FEATURES as BEAT_FEATURES, BeatFeatures

SIZE = 32  # patch side
LAG_FRACTION = 0.5  # delay-embedding rows of one channel are lagged over this fraction of the window
LAG_MAX_CHANNELS = 4  # ... when there are at most this many channels (blocks of >= 8 rows); else no lag
SOFT_KNEE = 5.0  # |z| beyond this is compressed logarithmically
STD_FLOOR_DB = 0.5  # spectrogram row standard-deviation floor


def _row_layout(n: int) -> tuple[list[int], list[int], list[int]]:
    """Rows -> (channel, lag index, rows of that channel) for n <= SIZE (virtual) channels."""
    chan = [r * n // SIZE for r in range(SIZE)]
    first = {c: chan.index(c) for c in set(chan)}
    count = {c: chan.count(c) for c in set(chan)}
    return chan, [r - first[c] for r, c in enumerate(chan)], [count[c] for c in chan]


def _group_matrix(c: int) -> torch.Tensor:
    """(V, C) averaging matrix: identity for C <= 32, else 32 contiguous channel groups."""
    if c <= SIZE:
        return torch.eye(c)
    m = torch.zeros(SIZE, c)
    for v in range(SIZE):
        lo, hi = v * c // SIZE, (v + 1) * c // SIZE
        m[v, lo:hi] = 1.0 / (hi - lo)
    return m


class SeriesFrontend:
    kind = "series"
    lead = 0  # series windows carry no context before their span

    def __init__(self, cfg: SeriesConfig):
        if cfg.representation not in ("patch", "spectrogram", "beats"):
            raise ValueError(f"series.representation: unknown representation {cfg.representation!r}")
        self.cfg = cfg
        self.representation = cfg.representation
        self.window = int(cfg.window)
        self.hop = int(cfg.hop)
        self.n_fft = max(4, min(self.window, 2 ** int(math.floor(math.log2(max(4, self.window // 4))))))
        self.n_channels: int | None = len(cfg.channels) or None
        self.lag_fraction_cfg: float | None = getattr(cfg, "lag_fraction", None)  # None -> automatic
        self.center: torch.Tensor | None = None  # (C,)
        self.scale: torch.Tensor | None = None  # (C,)
        self.row_mean = torch.zeros(SIZE, 1)  # spectrogram row standardisation (identity for patch)
        self.row_std = torch.ones(SIZE, 1)
        self._dev: dict[tuple[str, int], dict[str, Any]] = {}
        self.beats = BeatFeatures(self.rate, self.window) if cfg.representation == "beats" else None

    @property
    def rate(self) -> float:
        """Readings per second (window/hop units)."""
        return float(self.cfg.rate_hz)

    def train_hop(self, cfg) -> int:
        """Training windows start every ``train.train_hop_s`` seconds (at least 1, at most ``hop``)."""
        return max(1, min(self.hop, int(round(cfg.train.train_hop_s * self.rate))))

    # -- fitting ------------------------------------------------------------------
    def fit_channels(self, signals: list[np.ndarray]) -> None:
        """Fix the channel count from the training signals (each (T, C)); they must agree."""
        counts = {1 if np.ndim(s) == 1 else int(np.shape(s)[1]) for s in signals}
        if len(counts) != 1:
            raise ValueError(f"training series have different channel counts: {sorted(counts)}")
        (c,) = counts
        if self.cfg.channels and len(self.cfg.channels) != c:
            raise ValueError(f"series.channels lists {len(self.cfg.channels)} channels but the training "
                             f"data has {c}")
        self.n_channels = c
        self._dev.clear()

    def fit(self, windows: np.ndarray, batch: int = 512, max_readings: int = 500_000) -> None:
        """Learn per-channel centre/scale (and spectrogram row statistics) from (N, window, C)."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim == 2:
            w = w[:, :, None]
        if len(w) == 0:
            raise ValueError("no training windows")
        c = w.shape[2]
        if self.n_channels is not None and self.n_channels != c:
            raise ValueError(f"training windows have {c} channels, expected {self.n_channels}")
        self.n_channels = c
        flat = w.reshape(-1, c).astype(np.float64)
        if len(flat) > max_readings:  # deterministic thinning (windows overlap anyway)
            flat = flat[:: int(math.ceil(len(flat) / max_readings))]
        center, scale = np.zeros(c), np.ones(c)
        for j in range(c):
            center[j], scale[j] = robust_center_scale(flat[:, j])
        self.center = torch.tensor(center, dtype=torch.float32)
        self.scale = torch.tensor(scale, dtype=torch.float32)
        self.row_mean = torch.zeros(SIZE, 1)
        self.row_std = torch.ones(SIZE, 1)
        self._dev.clear()
        if self.beats is not None:
            self.beats.fit(self._beat_input(torch.from_numpy(np.ascontiguousarray(w))))
        if self.representation == "spectrogram":
            sums = torch.zeros(SIZE, dtype=torch.float64)
            sq = torch.zeros_like(sums)
            count = 0
            for i in range(0, len(w), batch):
                s = self._raw(torch.from_numpy(w[i:i + batch])).double()  # (B, 32, 32)
                sums += s.sum(dim=(0, 2))
                sq += s.square().sum(dim=(0, 2))
                count += s.shape[0] * s.shape[2]
            mean = sums / count
            std = (sq / count - mean.square()).clamp_min(0).sqrt()
            self.row_mean = mean.float().unsqueeze(1)
            self.row_std = std.float().clamp_min(STD_FLOOR_DB).unsqueeze(1)
            self._dev.clear()

    # -- state ----------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        if self.center is None or self.scale is None:
            raise ValueError("series front end is not fitted")
        st = {"n_channels": torch.tensor(int(self.n_channels or len(self.center))),
              "center": self.center.clone(), "scale": self.scale.clone(),
              "row_mean": self.row_mean.clone(), "row_std": self.row_std.clone()}
        if self.beats is not None:
            st.update(self.beats.state())
        return st

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.n_channels = int(state["n_channels"])
        self.center = state["center"].float().clone()
        self.scale = state["scale"].float().clone()
        self.row_mean = state["row_mean"].float().clone()
        self.row_std = state["row_std"].float().clone()
        if self.center.shape != (self.n_channels,) or self.scale.shape != (self.n_channels,):
            raise ValueError("series front end state: centre/scale do not match the channel count")
        if self.row_mean.shape != (SIZE, 1) or self.row_std.shape != (SIZE, 1):
            raise ValueError("series front end state: row statistics must be (32, 1)")
        if not bool((self.scale > 0).all()) or not bool((self.row_std > 0).all()):
            raise ValueError("series front end state: scales must be > 0")
        if self.beats is not None:
            self.beats.load_state(state, self.n_channels)
        self._dev.clear()

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"representation": self.representation, "window_readings": self.window,
                             "hop_readings": self.hop, "rate_hz": self.rate,
                             "channels": list(self.cfg.channels), "n_channels": self.n_channels}
        if self.representation == "spectrogram":
            d["n_fft"] = self.n_fft
        elif self.beats is not None:
            d["features"] = list(BEAT_FEATURES)
        elif self.n_channels is not None:
            d["lag_fraction"] = self.lag_fraction(min(self.n_channels, SIZE))
        return d

    # -- device constants ---------------------------------------------------------
    def _consts(self, device: torch.device, c: int) -> dict[str, Any]:
        key = (str(device), c)
        if key in self._dev:
            return self._dev[key]
        if self.center is not None and len(self.center) != c:
            raise ValueError(f"windows have {c} channels, the front end was fitted on {len(self.center)}")
        center = self.center if self.center is not None else torch.zeros(c)
        scale = self.scale if self.scale is not None else torch.ones(c)
        group = _group_matrix(c)
        v = group.shape[0]
        chan, lag, rows = _row_layout(v)
        k: dict[str, Any] = {"center": center.to(device), "scale": scale.to(device),
                             "group": None if c <= SIZE else group.to(device),
                             "row_mean": self.row_mean.to(device), "row_std": self.row_std.to(device)}
        if self.representation == "patch":
            k.update(self._patch_consts(chan, lag, rows, v, device))
        elif self.representation == "spectrogram":
            k.update(self._spec_consts(chan, lag, rows, device))
        self._dev[key] = k
        return k

    def lag_fraction(self, n_channels: int) -> float:
        """Fraction of the window over which a channel's delay-embedding rows are lagged."""
        if self.lag_fraction_cfg is not None:
            return float(self.lag_fraction_cfg)
        return LAG_FRACTION if n_channels <= LAG_MAX_CHANNELS else 0.0

    def _patch_consts(self, chan, lag, rows, v, device) -> dict[str, Any]:
        w = self.window
        lag_frac = min(max(self.lag_fraction(v), 0.0), 0.9)
        pos = torch.zeros(SIZE, SIZE, dtype=torch.float64)
        cols = torch.arange(SIZE, dtype=torch.float64)
        step = 0.0
        for r in range(SIZE):
            if rows[r] == 1 or lag_frac == 0.0:
                span, d = float(w - 1), 0.0
            else:
                span = (w - 1) * (1.0 - lag_frac)
                d = (w - 1) * lag_frac / (rows[r] - 1)
            pos[r] = lag[r] * d + cols * span / (SIZE - 1)
            step = max(step, span / (SIZE - 1))
        pos = pos.clamp(0, w - 1)
        i0 = pos.floor().long().clamp(0, w - 1)
        i1 = (i0 + 1).clamp(max=w - 1)
        frac = (pos - i0.double()).float()
        ch = torch.tensor(chan).long()[:, None].expand(SIZE, SIZE)
        smooth = 1
        if step > 1.5:  # decimating: moving average over about one column step first
            smooth = int(round(step))
            smooth += 1 - smooth % 2  # odd, so the average stays centred
            smooth = min(smooth, w if w % 2 else w - 1)
        return {"flat0": (i0 * v + ch).reshape(-1).to(device), "flat1": (i1 * v + ch).reshape(-1).to(device),
                "frac": frac.reshape(-1).to(device), "smooth": max(1, smooth)}

    def _spec_consts(self, chan, lag, rows, device) -> dict[str, Any]:
        w, n = self.window, self.n_fft
        starts = torch.tensor([int(round(j * (w - n) / (SIZE - 1))) for j in range(SIZE)])
        frame_idx = starts[:, None] + torch.arange(n)[None, :]  # (32, n)
        nbins = n // 2 + 1
        # one filter bank per distinct band count (channel blocks of 32 // V or 32 // V + 1 rows)
        fb = torch.zeros(SIZE, nbins)
        for r in range(SIZE):
            fb[r] = _log_filters(rows[r], nbins)[lag[r]]
        return {"frame_idx": frame_idx.to(device), "hann": torch.hann_window(n, periodic=True).to(device),
                "fb": fb.to(device), "chan": torch.tensor(chan).long().to(device)}

    # -- transform ------------------------------------------------------------------
    def _normalise(self, x: torch.Tensor, k: dict[str, Any]) -> torch.Tensor:
        z = (x - k["center"]) / k["scale"]
        z = torch.nan_to_num(z, nan=0.0, posinf=1e6, neginf=-1e6)
        if k["group"] is not None:
            z = z @ k["group"].T
        return z

    def _normalised(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """(B, window, C) or (B, window) readings -> normalised (B, W, V) and the device constants."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        if x.dim() != 3 or x.shape[1] != self.window:
            raise ValueError(f"expected windows (B, {self.window}, C), got {tuple(x.shape)}")
        x = x.float()
        k = self._consts(x.device, x.shape[2])
        return self._normalise(x, k), k

    def _beat_input(self, x: torch.Tensor) -> np.ndarray:
        """Normalised readings as float64 NumPy on the CPU (the beats features are NumPy)."""
        return self._normalised(x)[0].detach().cpu().double().numpy()

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, window, C) -> (B, 32, 32) before row standardisation."""
        z, k = self._normalised(x)  # (B, W, V)
        b, w, v = z.shape
        if self.representation == "patch":
            a = z.abs()
            z = torch.where(a > SOFT_KNEE, torch.sign(z) * (SOFT_KNEE + torch.log1p((a - SOFT_KNEE).clamp_min(0))), z)
            if k["smooth"] > 1:
                m = k["smooth"]
                z = F.avg_pool1d(z.transpose(1, 2), m, stride=1, padding=m // 2,
                                 count_include_pad=False).transpose(1, 2)
            flat = z.reshape(b, w * v)
            out = torch.lerp(flat[:, k["flat0"]], flat[:, k["flat1"]], k["frac"])
            return out.reshape(b, SIZE, SIZE)
        z = z.clamp(-1e4, 1e4)
        frames = z[:, k["frame_idx"], :]  # (B, 32, n, V)
        frames = frames.permute(0, 3, 1, 2) * k["hann"]  # (B, V, 32, n)
        spec = torch.fft.rfft(frames, dim=-1)
        power = spec.real.square() + spec.imag.square()  # (B, V, 32, nbins)
        per_row = power[:, k["chan"]]  # (B, 32 rows, 32 frames, nbins)
        banded = (per_row * k["fb"][None, :, None, :]).sum(-1)  # (B, 32, 32)
        return 10.0 * torch.log10(banded.clamp_min(1e-10))

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """Names of the feature-vector columns (beats representation), else None (patches)."""
        return BEAT_FEATURES if self.beats is not None else None

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(B, window, C) readings -> (B, 1, 32, 32) patches, or (B, 7) features for "beats"."""
        if self.beats is not None:
            f = self.beats.transform(self._beat_input(x))
            return torch.from_numpy(f.astype(np.float32)).to(x.device)
        out = self._raw(x)
        if self.representation == "spectrogram":
            k = self._consts(out.device, x.shape[2] if x.dim() == 3 else 1)
            out = (out - k["row_mean"]) / k["row_std"]
        return out.unsqueeze(1)


def _log_filters(bands: int, nbins: int) -> torch.Tensor:
    """(bands, nbins) triangular filters on log-spaced centres from bin 1 to the last bin.

    Each filter is at least one bin wide on either side (so it always covers a
    bin) and sums to one.
    """
    lo, hi = 1.0, float(nbins - 1)
    if bands == 1:
        fb = torch.zeros(1, nbins)
        fb[0, 1:] = 1.0
        return fb / fb.sum()
    centers = np.exp(np.linspace(math.log(lo), math.log(max(hi, lo + 1e-6)), bands))
    edges = np.concatenate([[centers[0] / (centers[1] / centers[0])], centers,
                            [centers[-1] * (centers[-1] / centers[-2])]])
    bins = np.arange(nbins, dtype=np.float64)
    fb = np.zeros((bands, nbins))
    for i in range(bands):
        c = centers[i]
        left = max(c - edges[i], 1.0)
        right = max(edges[i + 2] - c, 1.0)
        up = (bins - (c - left)) / left
        down = ((c + right) - bins) / right
        f = np.clip(np.minimum(up, down), 0.0, None)
        f[0] = 0.0  # no DC
        if f.sum() <= 0:
            f[int(round(c))] = 1.0
        fb[i] = f / f.sum()
    return torch.from_numpy(fb.astype(np.float32))
