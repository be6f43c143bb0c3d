"""Scoring throughput of a saved model: windows/s and how many live streams one worker keeps up with.

    python -m streamad.benchmarks.throughput --model MODEL_DIR [--device cpu|cuda] [--batch 256] [--seconds 10]

Times the daemon's scoring path (front end + detector + calibration) on real-length windows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from streamad.kinds import kind_of
from streamad.model import AnomalyModel
from streamad.progress import bar


def measure(m: AnomalyModel, batch: int = 256, seconds: float = 10.0, show: bool = True,
            precision: str = "float32") -> dict:
    """Windows per second of ``m.score`` on random real-length windows, after one warm-up batch
    (``precision``: the detector's, on CUDA; see ``AnomalyModel.components``)."""
    shape = (batch, *kind_of(m.cfg).window_shape(m))
    x = (np.random.default_rng(0).standard_normal(shape) * 0.05).astype(np.float32)
    m.score(x, batch=batch, precision=precision)  # warm-up
    if m.device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    with bar(int(seconds), "throughput", "s", enable=show) as pb:
        while time.perf_counter() - t0 < seconds:
            m.score(x, batch=batch, precision=precision)
            n += batch
            pb.n = int(time.perf_counter() - t0)
            pb.refresh()
    wps = n / (time.perf_counter() - t0)
    hop_s = m.frontend.hop / m.frontend.rate
    return {"model": m.version, "device": str(m.device), "threads": torch.get_num_threads(), "batch": batch,
            "precision": precision if m.device.type == "cuda" else "float32",
            "windows_per_s": round(wps, 1), "ms_per_window": round(1000 / wps, 3),
            "live_streams_per_worker": int(wps * hop_s)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--precision", choices=("float32", "float16"), default="float32",
                   help="the detector's precision on CUDA (worker.precision; the CPU ignores it)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(measure(AnomalyModel.load(a.model, device=a.device), a.batch, a.seconds, precision=a.precision)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
