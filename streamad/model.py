"""A self-contained, versioned model: front end -> detector -> calibration.

MODEL_DIR/
  model.json   format, versions, config used, detector name + params, calibration,
               training summary
  weights.pt   flat dict of tensors (front-end statistics + detector state),
               loaded with torch.load(weights_only=True)
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad import __version__
from streamad import model_checks as checks
from streamad.calibrate import Calibration
from streamad.config import Config, ConfigError, from_dict
from streamad.errors import described, first_line
from streamad.kinds import kind_of
from streamad.models.base import Detector
from streamad.models.registry import create
from streamad.windows.base import Window, stack_windows

FORMAT = 1
FRONTEND_SLICE = 64  # windows per front-end pass on the CPU (cache-sized; measured in docs/PERFORMANCE.md)


class ModelFileError(ValueError):
    """A model directory that cannot be used; one-line message."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"model.device: {name!r} requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"model.device: invalid device {name!r}") from None


def make_frontend(cfg: Config):
    return kind_of(cfg).frontend(cfg)


class AnomalyModel:
    def __init__(self, cfg: Config, frontend: Any, detector: Detector,
                 calibration: Calibration | None = None, meta: dict[str, Any] | None = None):
        self.cfg = cfg
        self.frontend = frontend
        self.detector = detector
        self.calibration = calibration
        self.meta = meta or {}
        self.device = detector.device
        self.source: Path | None = None  # the directory it was loaded from (load)
        if hasattr(detector, "attach_frontend"):  # a waveform detector that also uses the log-mel front end
            detector.attach_frontend(frontend)

    @property
    def version(self) -> str:
        return self.meta.get("model_version", "unsaved")

    @property
    def name(self) -> str:
        return self.detector.name

    @property
    def threshold(self) -> float:
        return self.calibration.threshold if self.calibration else math.inf

    @property
    def hearing_check(self) -> float | None:
        """The training's hearing-check ROC-AUC (audio, ``train.hearing_check``), or None."""
        check = (self.calibration.holdout if self.calibration else {}).get("hearing_check") or {}
        return check.get("synthetic_auc")

    def to(self, device: torch.device) -> "AnomalyModel":
        self.detector.to(device)
        self.device = torch.device(device)
        return self

    def patches(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw windows -> what the detector sees. This is the one place that switches on the
        detector's input: front-end patches / vectors, or (``input = "waveform"``, e.g. the
        WaveNet predictor) the raw audio windows as (N, 1, samples)."""
        with torch.no_grad():
            return self._frontend(raw)

    def _waveform(self) -> bool:
        if getattr(self.detector, "input", "patches") != "waveform":
            return False
        if getattr(self.frontend, "kind", None) != "audio":
            raise ConfigError(f"model.detector: {self.detector.name} scores raw audio waveforms; it needs kind: audio")
        return True

    def _to_device(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A float32 batch on the scoring device; to CUDA from pinned host memory without blocking."""
        x = raw if isinstance(raw, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        if self.device.type != "cuda":
            return x.to(self.device)
        if not x.is_pinned():
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def _frontend(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The front end on the scoring device. On the CPU in slices of FRONTEND_SLICE windows: the
        intermediate spectra of a slice stay in the cache (3x less time per window than at 256)."""
        if self._waveform():
            x = self._to_device(raw)
            if self.frontend.lead and not self.detector.uses_context:  # the window alone, without its context
                x = x[..., self.frontend.lead:]
            return x.reshape(len(x), 1, -1)
        if self.device.type == "cuda" or len(raw) <= FRONTEND_SLICE:
            return self.frontend.transform(self._to_device(raw))
        return torch.cat([self.frontend.transform(self._to_device(raw[j:j + FRONTEND_SLICE]))
                          for j in range(0, len(raw), FRONTEND_SLICE)])

    def components(self, raw: np.ndarray | torch.Tensor, batch: int = 512,
                   precision: str = "float32") -> dict[str, np.ndarray]:
        """Raw score components in device batches of ``batch``; ``precision="float16"`` runs the
        detector under CUDA autocast (the front end and the mixture energy stay in float32/64)."""
        parts: list[dict[str, np.ndarray]] = []
        half = precision == "float16" and self.device.type == "cuda"
        # inference mode, except for detectors that search or differentiate at test time (AnoGAN, DSEBM)
        with torch.inference_mode(not getattr(self.detector, "score_needs_grad", False)):
            for i in range(0, len(raw), batch):
                x = self._frontend(raw[i:i + batch])
                with torch.autocast("cuda", dtype=torch.float16, enabled=half):
                    parts.append(self.detector.score_components(x))
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def score(self, raw: np.ndarray | torch.Tensor, batch: int = 512,
              precision: str = "float32") -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if len(raw) == 0:
            return np.zeros(0), {}
        comps = self.components(raw, batch, precision)
        if self.calibration is None:
            raise ModelFileError("model is not calibrated")
        return self.calibration.combine(comps), comps

    def score_windows(self, windows: list[Window], batch: int = 512,
                      precision: str = "float32") -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores of buffered windows (any streams) in device batches of ``batch``. For CUDA the
        windows are stacked straight into pinned host memory (asynchronous copies)."""
        if not windows:
            return np.zeros(0), {}
        if self.device.type != "cuda":
            return self.score(stack_windows(windows), batch, precision)
        shape = (len(windows),) + windows[0].data.shape
        buf = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        np.stack([w.data for w in windows], out=buf.numpy())
        return self.score(buf, batch, precision)

    # -- persistence ----------------------------------------------------------
    def save(self, out: str | Path, training: dict[str, Any] | None = None) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        state = {f"frontend.{k}": v for k, v in self.frontend.state().items()}
        state.update({f"detector.{k}": v for k, v in self.detector.state().items()})
        tmp = out / "weights.pt.tmp"
        torch.save(state, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:12]
        tmp.replace(out / "weights.pt")
        cfgd = self.cfg.to_dict()
        self.meta = {
            "format": FORMAT,
            "streamad_version": __version__,
            "model_version": f"{self.detector.name}-{digest}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kind": self.cfg.kind,
            "detector": self.detector.name,
            "params": self.detector.params,
            "config": {k: cfgd[k] for k in ("kind", "audio", "series", "tabular", "model", "alerts", "train")},
            "frontend": self.frontend.describe(),
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "training": training or self.meta.get("training", {}),
            "weights_sha256_12": digest,
        }
        # the version covers the calibration and config too (computed on the JSON as it is read back)
        self.meta["model_version"] = checks.version_of(json.loads(json.dumps(self.meta, default=_json_default)))
        (out / "model.json").write_text(json.dumps(self.meta, indent=2, default=_json_default))
        return out

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> "AnomalyModel":
        """Load and check a model directory (every field, the weights' hash, a dry run): ModelFileError
        with one line naming the file and field for anything that would fail later or silently."""
        path = Path(path)
        mj, wp = path / "model.json", path / "weights.pt"
        meta, state = _read_files(path, mj, wp)
        try:
            cfg = from_dict(meta["config"])
        except ConfigError as e:
            raise ModelFileError(f"{mj}: config.{e}") from None
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        try:
            frontend = make_frontend(cfg)
            frontend.load_state({k[9:]: v for k, v in state.items() if k.startswith("frontend.")})
            det = create(meta["detector"], meta["params"])
            det.to(dev)
            det.load_state({k[9:]: v for k, v in state.items() if k.startswith("detector.")})
            det.to(dev)
        except ConfigError as e:
            raise ModelFileError(f"{mj}: {e}") from None
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: model files do not match "
                                 f"({described(e)})") from None
        try:
            checks.check_calibration(meta["calibration"])
            cal = Calibration.from_dict(meta["calibration"])
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{mj}: {first_line(e, 200)}") from None
        m = cls(cfg, frontend, det, cal, meta)
        m.device, m.source = dev, path
        try:
            checks.dry_run(m, kind_of(cfg).window_shape(m), meta["calibration"])
        except ValueError as e:
            raise ModelFileError(f"{mj}: {e}") from None
        return m


def _read_files(path: Path, mj: Path, wp: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """model.json (fields checked) and weights.pt (hash checked, then loaded weights-only)."""
    if not mj.is_file() or not wp.is_file():
        raise ModelFileError(f"{path}: not a streamad model directory (needs model.json and weights.pt)")
    try:
        meta = json.loads(mj.read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{mj}: unreadable model description ({first_line(e)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise ModelFileError(f"{mj}: unsupported model format {got!r:.40} (expected {FORMAT})")
    try:
        checks.check_meta(meta)
        checks.check_weights_hash(wp, meta)
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{mj}: {e}") from None
    try:
        state = torch.load(wp, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(f"{wp}: cannot load weights safely ({first_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{wp}: expected a flat dict of tensors")
    try:
        checks.check_tensors(state)
    except ValueError as e:
        raise ModelFileError(f"{wp}: {e}") from None
    return meta, state


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
