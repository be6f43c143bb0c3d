"""Alert evidence a person can check in seconds: a PNG of what the model saw, a WAV to listen to.

* :func:`plot_residual` — the window's input patch (log-mel spectrogram or series patch), the
  model's reconstruction and the residual |x - G(x)|, with the score and threshold in the title;
  for feature vectors (series ``beats``) one bar per standardised feature instead.
* :class:`EvidenceRecorder` — for the daemon (``alerts.evidence_dir``): per alert a PNG of the
  opening window; per audio event a WAV from ``evidence_pre_s`` before the event to
  ``evidence_post_s`` after it (at most ``evidence_max_s``), written when the event closes. File
  names are the alert id, so a replay after a crash rewrites the same files. Audio is kept per
  stream only while evidence is on: about ``(pre + window) s x rate x 2 bytes`` per stream
  (int16), plus the open events' audio.
"""
from __future__ import annotations

import hashlib
import warnings
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np


def plot_residual(model: Any, window: np.ndarray, path: str | Path, title: str) -> str:
    """Input patch, reconstruction and residual |x - G(x)| of one window as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = model.patches(window[None])
    if x.dim() == 2:  # feature vectors (e.g. the series "beats" representation): one bar per feature
        return _plot_features(model, x[0].cpu().numpy(), path, title)
    rec = None
    if x.dim() == 3:  # a raw-waveform detector: show the front end's patch of the window
        import torch

        x = model.frontend.transform(torch.from_numpy(np.asarray(window[None], dtype=np.float32)))
    else:
        rec = model.detector.reconstruct(x)
    panels = [("input (standardised patch)", x[0, 0].cpu().numpy())]
    if rec is not None:
        r = rec[0, 0].numpy()
        panels += [("reconstruction G(x)", r), ("residual |x - G(x)|", np.abs(panels[0][1] - r))]
    fig = Figure(figsize=(4 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma" if "residual" in name else "viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("row (mel band / channel)")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path, title)


def _plot_features(model: Any, f: np.ndarray, path: str | Path, title: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = getattr(model.frontend, "feature_names", None) or [str(i) for i in range(len(f))]
    fig = Figure(figsize=(max(4.0, 0.6 * len(f) + 1.5), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(f)), f, color=["C3" if abs(v) > 3 else "C0" for v in f])
    ax.set_xticks(range(len(f)))
    ax.set_xticklabels(list(names)[:len(f)], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("standardised feature (training: 0 +- 1)")
    ax.axhline(0, color="k", lw=0.5)
    return _save(fig, path, title)


def _save(fig: Any, path: str | Path, title: str) -> str:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=90)
    return str(path)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> str:
    """Mono 16-bit PCM WAV (stdlib ``wave``; clipped to [-1, 1])."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    tmp.replace(path)
    return str(path)


class _Tape:
    """Recent audio of one stream on its capture clock: int16 chunks (start time, samples)."""

    def __init__(self, keep_s: float, sr: int):
        self.keep_s, self.sr = keep_s, sr
        self.chunks: deque[tuple[float, np.ndarray]] = deque()
        self.recording: list[tuple[float, np.ndarray]] | None = None  # an open event's audio
        self.recorded_s = 0.0

    def add(self, t0: float, samples: np.ndarray, max_s: float) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        self.chunks.append((t0, pcm))
        if self.recording is not None and self.recorded_s < max_s:
            self.recording.append((t0, pcm))
            self.recorded_s += len(pcm) / self.sr

    def prune(self) -> None:
        """Keep the last ``keep_s`` seconds (called once the windows cut so far are decided)."""
        if self.chunks:
            newest = self.chunks[-1][0] + len(self.chunks[-1][1]) / self.sr
            while self.chunks and self.chunks[0][0] + len(self.chunks[0][1]) / self.sr < newest - self.keep_s:
                self.chunks.popleft()

    def cut(self, start: float, end: float) -> np.ndarray:
        """Samples in [start, end) from the chunks (recording first, then the tape), float32."""
        pieces = {}
        for t0, pcm in list(self.recording or []) + list(self.chunks):
            pieces.setdefault(round(t0 * self.sr), pcm)
        out = []
        for pos in sorted(pieces):
            pcm = pieces[pos]
            a, b = max(pos, round(start * self.sr)), min(pos + len(pcm), round(end * self.sr))
            if b > a:
                out.append(pcm[a - pos:b - pos])
        return (np.concatenate(out).astype(np.float32) / 32768.0) if out else np.zeros(0, np.float32)


def stream_dir(stream_id: str) -> str:
    """A stream's folder name under the evidence root: the stream id when it is a plain name
    (letters, digits, ``-_.``, at most 120 characters, not only dots); otherwise its plain characters
    with a hash of the whole id, so that no id (``..``, ``a/b``, ``/etc``) names a folder outside the
    root and two ids (``a/b``, ``a_b``) never share one."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stream_id)[:120]
    if plain == stream_id and plain.strip("."):
        return plain
    digest = hashlib.sha1(stream_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{plain.strip('.')[:100] or 'stream'}-{digest}"


class EvidenceRecorder:
    """PNG per alert, WAV per audio event, under ``root/<stream id>/<alert id>.{png,wav}``."""

    def __init__(self, root: str | Path, model: Any, audio: bool, pre_s: float = 1.0, post_s: float = 1.0,
                 max_s: float = 10.0):
        self.root, self.model, self.audio = Path(root), model, audio
        self.pre_s, self.post_s, self.max_s = pre_s, post_s, max_s
        self.sr = int(getattr(model.frontend, "sr", 0) or 0)
        self.keep_s = pre_s + (model.frontend.window / model.frontend.rate if audio else 0.0) + post_s
        self.tapes: dict[Any, _Tape] = {}

    def _paths(self, alert: dict) -> tuple[Path, Path]:
        d = self.root / stream_dir(str(alert["stream_id"]))
        return d / f"{alert['alert_id']}.png", d / f"{alert['alert_id']}.wav"

    def samples(self, key: Any, t0: float, samples: np.ndarray) -> None:
        """Audio of a stream as it arrives (decoded chunk samples at capture time ``t0``)."""
        if self.audio:
            self.tapes.setdefault(key, _Tape(self.keep_s, self.sr)).add(t0, samples, self.max_s + self.keep_s)

    def alert(self, key: Any, alert: dict, window: Any) -> None:
        """Write the PNG of the opening window; start recording the event's audio. Adds the
        ``evidence`` paths to the alert record (the WAV appears when the event closes)."""
        png, wav = self._paths(alert)
        sid = str(alert["stream_id"]).encode("unicode_escape").decode("ascii")  # no control character in a title
        with warnings.catch_warnings():  # a glyph the font lacks (any script, an escape) warns on stderr
            warnings.simplefilter("ignore")
            plot_residual(self.model, window.data, png, f"{sid} at {alert['window_start_iso']}: "
                          f"score {alert['score']:.2f} (threshold {alert['threshold']:.2f})")
        alert["evidence"] = {"png": str(png)}
        tape = self.tapes.get(key)
        if tape is not None:
            tape.recording = [c for c in tape.chunks if c[0] + len(c[1]) / self.sr > window.start - self.pre_s]
            tape.recorded_s = sum(len(c[1]) for c in tape.recording) / self.sr
            alert["evidence"]["wav"] = str(wav)

    def closed(self, key: Any, alert: dict, event: Any) -> None:
        """The event ended: write its WAV (pre-roll, event, post-roll; at most ``max_s``)."""
        tape = self.tapes.get(key)
        if tape is None or "wav" not in alert.get("evidence", {}):
            return
        start = event.start - self.pre_s
        audio = tape.cut(start, min(event.end + self.post_s, start + self.max_s))
        tape.recording = None
        if len(audio):
            write_wav(alert["evidence"]["wav"], audio, self.sr)

    def settle(self) -> None:
        """The windows cut so far are decided: drop audio no evidence can need any more."""
        for tape in self.tapes.values():
            tape.prune()

    def forget(self, key: Any) -> None:
        self.tapes.pop(key, None)
