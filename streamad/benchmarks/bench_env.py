"""What every phase of ``streamad bench`` shares: the recordings, the benchmark model, daemon
configs, and a handle on a running daemon (its /metrics and its processes' CPU and memory).

The benchmark model (``--detector``) is the shipped audio default (``configs/audio.yaml``'s front
end and model section, trained on the ambient recordings as ``streamad train`` would), the same for
``configs/audio-sfx.yaml`` (``sfx``), or a GMGAN of the daemon's default size trained briefly (its
weights do not change the cost of a forward pass). Its threshold is set so that a known fraction of
the benchmark recordings' windows opens an alert (``alert_threshold``), and alert latency is
measured on many alerts. The naive loop always runs a GMGAN's generator (``naive_model``): the
GANomaly-sized network a user writes the loop for.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

SR = 16000
WINDOW, HOP = SR, SR // 2  # the audio defaults: 1 s windows every 0.5 s


# -- recordings and model --------------------------------------------------------------
def corpus(data_dir: Path, out: Path, max_files: int = 64) -> np.ndarray:
    """The ambient recordings at 16 kHz, concatenated (float32, cached as ``out/corpus.npy``)."""
    cache = out / "corpus.npy"
    if cache.exists():
        return np.load(cache)
    from streamad.io.files import list_audio, load_audio

    files = list_audio([data_dir])[:max_files]
    if not files:
        raise FileNotFoundError(f"no audio recordings in {data_dir}")
    sig = np.concatenate([load_audio(f, SR) for f in files]).astype(np.float32)
    np.save(cache, sig)
    return sig


# --detector: the shipped audio default, a default-size GMGAN, or configs/audio-sfx.yaml (frame
# mixtures + the pretrained sound-effects CNN over the window and the half-second before it)
DETECTORS = ("default", "gmgan", "sfx")
CONFIGS = {"default": "audio.yaml", "sfx": "audio-sfx.yaml"}
ROOT = Path(__file__).resolve().parents[2]


def on_wire(sig: np.ndarray) -> np.ndarray:
    """``sig`` as the daemon receives it: through 16-bit PCM (``streamad replay``'s records), float32."""
    return (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)


def whole_numbers(text: str, flag: str, what: str) -> tuple[int, ...]:
    """Comma-separated whole numbers >= 1 (``--streams``, ``--processes``, batch sizes); a one-line
    ConfigError otherwise."""
    from streamad.config import ConfigError

    try:
        sizes = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{flag}: whole numbers separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"{flag}: {what} must be >= 1, got {text!r}")
    return sizes


def batch_sizes(text: str, flag: str) -> tuple[int, ...]:
    """Comma-separated batch sizes (``--model-batches``, ``--batches``); a one-line ConfigError otherwise."""
    return whole_numbers(text, flag, "batch sizes")


def _train_cfg(detector: str, steps: int) -> dict:
    if detector == "gmgan":
        return {"model": {"detector": "gmgan", "params": {"steps": steps}}, "train": {"train_hop_s": 0.25}}
    shipped = yaml.safe_load((ROOT / "configs" / CONFIGS[detector]).read_text())
    d = {k: shipped[k] for k in ("kind", "audio", "model", "train") if k in shipped}
    d.setdefault("train", {})["escalate_to"] = None  # the detector named is the one measured, whatever the audio
    return d


def base_model(out: Path, data_dir: Path, detector: str = "gmgan", steps: int = 100) -> Path:
    """``out/model-base-DETECTOR``: ``detector`` trained on 16 ambient recordings (once; reused)."""
    from streamad.config import from_dict
    from streamad.io.files import list_audio
    from streamad.train import load_recordings, train_model

    if detector not in DETECTORS:
        raise ValueError(f"bench --detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    base = out / f"model-base-{detector}"
    if not (base / "model.json").exists():
        d = _train_cfg(detector, steps)
        d.setdefault("train", {})["threads"] = 1
        cfg = from_dict(d)
        train_model(cfg, load_recordings(cfg, list_audio([data_dir])[:16]), base, show_progress=False)
    return base


def naive_model(out: Path, data_dir: Path, bench_model: Path) -> Path:
    """The GMGAN whose generator the naive loop runs: the benchmark model when it is one."""
    meta = json.loads((bench_model / "model.json").read_text())
    return bench_model if meta.get("detector") == "gmgan" else base_model(out, data_dir, "gmgan")


def prepare_model(out: Path, data_dir: Path, sig: np.ndarray, model: Path | None, alert_fraction: float,
                  detector: str = "gmgan") -> tuple[Path, dict]:
    """A model directory whose threshold makes ``alert_fraction`` of the corpus windows open an alert:
    ``model`` when given, else ``detector`` trained by ``base_model``."""
    from streamad.kinds import kind_of
    from streamad.model import AnomalyModel
    from streamad.model_checks import version_of
    from streamad.windows.base import frame_windows

    base = model if model is not None else base_model(out, data_dir, detector)
    m = AnomalyModel.load(base, device="cpu")
    scores, _ = m.score(frame_windows(on_wire(sig), kind_of(m.cfg).window_shape(m)[0], HOP), 256)  # context included
    thr = alert_threshold(scores, alert_fraction)
    dst = out / "model-bench"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    meta = json.loads((dst / "model.json").read_text())
    meta["calibration"]["threshold"] = thr
    meta["calibration"]["min_windows"] = meta["calibration"]["of_windows"] = 1
    meta["model_version"] = version_of(meta)  # another threshold: another version (the base's is base_version)
    (dst / "model.json").write_text(json.dumps(meta, indent=2))
    info = {"model_version": meta["model_version"], "base_version": m.version, "detector": m.name, "made": "given" if model is not None else detector,
            "params": m.detector.params, "threshold": thr,
            "alert_fraction_target": alert_fraction, "trained_steps": meta["params"].get("steps")}
    return dst, info


def alert_threshold(scores: np.ndarray, fraction: float) -> float:
    """The threshold at which ``fraction`` of the windows open an alert (1-of-1 rule, no cooldown):
    a window over it whose predecessor is not. Searched over the score quantiles."""
    from streamad.alerts import AlertRule

    starts = np.arange(len(scores)) * 0.5
    best, err = float(np.max(scores)), np.inf
    for q in np.linspace(0.5, 0.999, 200):
        thr = float(np.quantile(scores, q))
        opens = AlertRule(thr).decide(scores, starts, starts + 1.0).opens.mean()
        if abs(opens - fraction) < err:
            best, err = thr, abs(opens - fraction)
    return best


def write_config(path: Path, topic: str, group: str, model: Path, embedded: bool, inputs: list[str] | None = None,
                 device: str = "cpu", **worker) -> Path:
    """A daemon config for the benchmark (alerts to ``TOPIC-alerts``; ``inputs`` default ``[TOPIC]``;
    the model scored on ``device``)."""
    kafka = {"input_topics": inputs or [topic], "alert_topic": f"{topic}-alerts", "dead_letter_topic": f"{topic}-dlq",
             "group_id": group}
    # short sessions: Tansu holds a group join for half the session (the client default, 45 s, makes
    # every join 23 s); 6 s is the least Apache Kafka accepts (group.min.session.timeout.ms)
    session = 2000 if embedded else 6000
    kafka.update(session_timeout_ms=session, heartbeat_interval_ms=session // 3)
    cfg = {"kind": "audio", "kafka": kafka, "model": {"path": str(model), "device": device},
           "alerts": {"cooldown_s": 0.0}, "worker": {"threads": 1, **worker}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def daemon_worker(a) -> dict:
    """Worker settings of the benchmarked daemon beyond the config defaults (``bench --max-batch``,
    ``--queue-windows``): a GPU scores larger batches."""
    gpu = str(a.device).startswith("cuda")
    w = {"max_batch": a.max_batch or (4096 if gpu else None),
         "queue_windows": a.queue_windows or (8192 if gpu else None)}
    return {k: v for k, v in w.items() if v is not None}


# -- /proc and /metrics --------------------------------------------------------------------
def proc_stats(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, RSS MB) summed over live processes (Linux /proc; zeros elsewhere)."""
    cpu = rss = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(stat[11]) + int(stat[12])) / tick
            rss += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024
        except (OSError, AttributeError, IndexError, ValueError):
            pass
    return cpu, rss


def peak_rss_mb(pid: int) -> float:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return float("nan")


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    out = []
    for c in children(pid):
        out += [c, *descendants(c)]
    return out


_METRIC = re.compile(r"^(streamad_[a-z_]+)(?:\{[^}]*\})? (\S+)$", re.M)
_TOPIC_LAG = re.compile(r'^streamad_consumer_lag\{[^}]*\btopic="([^"]*)"[^}]*\} (\S+)$', re.M)


def _summed(port: int, pattern: re.Pattern) -> dict[str, float]:
    """One process's /metrics: the values of ``pattern``'s matches summed by its first group."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for key, val in pattern.findall(text):
        out[key] = out.get(key, 0.0) + float(val)
    return out


def scrape(port: int) -> dict[str, float]:
    """Every streamad series of one process's /metrics, summed over labels."""
    return _summed(port, _METRIC)


def topic_lags(port: int) -> dict[str, float]:
    """One process's consumer lag per input topic (its partitions summed); topics it has no lag for
    (not assigned to it, or not fetched yet) are absent."""
    return _summed(port, _TOPIC_LAG)


class DaemonRun:
    """``streamad run`` (one or ``--processes N``) as a subprocess, watched through /metrics and /proc."""

    def __init__(self, cfg: Path, bootstrap: str, log: Path, port: int, processes: int = 1):
        self.cfg, self.bootstrap, self.log, self.port, self.n = cfg, bootstrap, log, port, processes
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0, wait: bool = True) -> "DaemonRun":
        """Start it; with ``wait``, return once every process is up and holds partitions."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "streamad.cli", "run", "--config", str(self.cfg), "--bootstrap",
               self.bootstrap, "--metrics-port", str(self.port), "--processes", str(self.n)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env=env,
                                     start_new_session=True)
        if not wait:
            return self
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:  # every process up and holding its partitions
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({self.proc.returncode}); see {self.log}")
            try:
                if sum(self.scrape_each("streamad_partitions_assigned")) >= 1 and len(self.pids()) == self.n:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daemon did not get its partitions within {timeout:.0f} s; see {self.log}")

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        top = children(self.proc.pid) if self.n > 1 else [self.proc.pid]
        return [q for p in top for q in [p, *descendants(p)]]  # with their scoring processes (worker.scorer)

    def scrape_each(self, name: str) -> list[float]:
        return [scrape(self.port + i).get(name, 0.0) for i in range(self.n)]

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in range(self.n):
            for k, v in scrape(self.port + i).items():
                out[k] = out.get(k, 0.0) + v
        return out

    def topic_lag(self, topic: str) -> float | None:
        """Records of ``topic`` not read yet, over every process; None when none reports it."""
        lags = [topic_lags(self.port + i).get(topic) for i in range(self.n)]
        known = [x for x in lags if x is not None]
        return sum(known) if known else None

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()
