"""Reading audio files: any rate / channel count -> mono float32 at the target rate."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from streamad.errors import first_line

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus"}


class InputError(ValueError):
    """A missing or unreadable input file; the message is one line."""


def default_data_dir() -> Path:
    """``$STREAMAD_DATA``, else the ``shared/data`` folder beside the checkout (or the cwd)."""
    env = os.environ.get("STREAMAD_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


def expand_paths(paths, exts: set[str]) -> list[Path]:
    """Expand directories (recursively) into sorted files with one of ``exts``; keep explicit files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in exts and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    return out


def list_audio(paths: list[str | Path]) -> list[Path]:
    """Audio files under ``paths`` (directories searched recursively)."""
    return expand_paths(paths, AUDIO_EXTS)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode, mix down to mono and resample to ``sample_rate``."""
    import soundfile as sf

    path = Path(path)
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; fall back to librosa/audioread
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():  # its fallback warnings say nothing the one-line error does not
                warnings.simplefilter("ignore")
                y, sr = librosa.load(str(path), sr=None, mono=True)
            x = y[:, None]
        except Exception:
            raise InputError(f"{path}: cannot decode audio ({first_line(e, 120)})") from None
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:  # a float file can hold NaN / inf; no detector, resampler or statistic survives them
        raise InputError(f"{path}: {bad} of {x.size} samples are NaN or infinite (not audio)")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != sample_rate and len(x):
        import librosa

        x = librosa.resample(x, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float32)
