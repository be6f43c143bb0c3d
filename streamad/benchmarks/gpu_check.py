"""The scoring path on a GPU: the same scores as on the CPU, and how fast, model by model.

    python -m streamad.benchmarks.gpu_check --out DIR [--models default,gmgan,sfx] [--device cuda]
        [--data AMBIENT_DIR] [--batches 256,1024,4096] [--seconds 3]

For each model (``default``: configs/audio.yaml's detector; ``gmgan``: a default-size GMGAN;
``sfx``: configs/audio-sfx.yaml; each trained on the ambient recordings once, as ``streamad bench``
does, and kept in ``DIR/models``):

1. *the same scores*: real ambient windows scored on the CPU and on ``--device`` in float32 and
   float16 (``worker.precision``): the largest score difference in units of the scores' spread
   (inter-quartile range), and how many alert decisions at the model's calibrated threshold differ;
2. *speed*: model-only windows/s (front end + detector + calibration, as the daemon scores a batch)
   on the CPU (one thread, batch 256) and on the device for each batch size and precision.

Writes ``DIR/gpu_check.json`` and prints a table. Without CUDA it still runs on the CPU alone
(``--device cpu``: a smoke test of this command, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from streamad.benchmarks.bench_env import DETECTORS as NAMES  # the models bench trains: default, gmgan, sfx
from streamad.benchmarks.bench_env import base_model, batch_sizes, corpus, on_wire

THREADS = torch.get_num_threads()  # before any timing sets it to 1


def say(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def windows_for(m, sig: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` real windows of the length ``m`` scores (its context included), on the wire's
    16-bit grid, spread evenly over the recordings (overlapping when they are short)."""
    from streamad.kinds import kind_of
    from streamad.windows.base import frame_windows

    wire = on_wire(sig)
    size = kind_of(m.cfg).window_shape(m)[0]
    return np.ascontiguousarray(frame_windows(wire, size, max(1, (len(wire) - size) // max(1, n - 1))))


def agreement(ref: tuple[np.ndarray, dict], got: tuple[np.ndarray, dict], threshold: float) -> dict:
    """How far scores ``got`` are from ``ref``: score and component differences, alert decisions."""
    s0, c0 = ref
    s1, c1 = got
    q75, q25 = np.percentile(s0, [75, 25])
    spread = max(float(q75 - q25), 1e-12)
    comp = {k: float(np.max(np.abs(c1[k] - v)) / max(float(np.percentile(v, 75) - np.percentile(v, 25)), 1e-12))
            for k, v in c0.items()}
    diff = float(np.max(np.abs(s1 - s0)))
    return {"max_abs_diff": diff, "max_diff_in_iqr": diff / spread,
            "worst_component": max(comp, key=comp.get) if comp else None,
            "worst_component_diff_in_iqr": max(comp.values()) if comp else 0.0,
            "decisions_differ": int(np.sum((s0 > threshold) != (s1 > threshold))),
            "nonfinite": int(np.sum(~np.isfinite(s1))),  # NaN is never over a threshold: such windows never alert
            "alerts_ref": int(np.sum(s0 > threshold)), "windows": int(len(s0))}


def check(name: str, path: Path, sig: np.ndarray, device: str, batches: list[int], seconds: float,
          n_windows: int) -> dict:
    from streamad.benchmarks.throughput import measure
    from streamad.model import AnomalyModel

    cpu = AnomalyModel.load(path, device="cpu")
    dev = AnomalyModel.load(path, device=device)
    x = windows_for(cpu, sig, n_windows)
    say(f"{name}: {cpu.name}, {len(x)} real windows, CPU vs {device}")
    torch.set_num_threads(THREADS)  # the reference on every core; timings on one thread
    ref = cpu.score(x, 256)
    torch.set_num_threads(1)
    out: dict = {"model": cpu.version, "detector": cpu.name, "path": str(path), "agreement": {}, "speed": []}
    for prec in ("float32", "float16"):
        got = dev.score(x, max(batches), precision=prec)
        out["agreement"][prec] = agreement(ref, got, float(cpu.threshold))
        ag = out["agreement"][prec]
        say(f"  {prec}: max score diff {ag['max_diff_in_iqr']:.2e} IQR, {ag['decisions_differ']} of {len(x)} "
            f"alert decisions differ, {ag['nonfinite']} scores not finite")
    out["speed"].append(measure(cpu, 256, seconds, show=False))
    say(f"  cpu 1 thread batch 256: {out['speed'][-1]['windows_per_s']} windows/s")
    if dev.device.type == "cuda":
        for prec in ("float32", "float16"):
            for b in batches:
                r = measure(dev, b, seconds, show=False, precision=prec)
                r["max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                out["speed"].append(r)
                say(f"  {device} {prec} batch {b}: {r['windows_per_s']} windows/s")
    return out


def table(res: dict) -> str:
    rows = [f"GPU check: {res['gpu'] or 'no GPU'}, torch {res['torch']}, {res['cpus']} CPUs ({res['cpu_model']})", "",
            "| model | device | precision | batch | windows/s | live streams (0.5 s hop) | max score diff (IQR) | "
            "alert decisions differ |", "|---|---|---|---|---|---|---|---|"]
    for name, r in res["models"].items():
        for s in r["speed"]:
            ag = r["agreement"].get(s["precision"]) if s["device"] != "cpu" else None
            diff = f"{ag['max_diff_in_iqr']:.1e}" if ag else "reference"
            if ag and ag["nonfinite"]:
                diff += f" ({ag['nonfinite']} not finite)"
            dec = f"{ag['decisions_differ']} / {ag['windows']}" if ag else "—"
            rows.append(f"| {name} ({r['detector']}) | {s['device']} | {s['precision']} | {s['batch']} | "
                        f"{s['windows_per_s']:,.0f} | {s['live_streams_per_worker']:,} | {diff} | {dec} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m streamad.benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--models", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}")
    p.add_argument("--model", action="append", default=[], metavar="NAME=MODEL_DIR",
                   help="use this trained model for NAME instead of training one (repeatable)")
    p.add_argument("--device", default="cuda", help="the device to check against the CPU (default cuda)")
    p.add_argument("--data", metavar="DIR", help="ambient recordings (default ../shared/data/audio/ambient)")
    p.add_argument("--batches", default="256,1024,4096", help="device batch sizes (default 256,1024,4096)")
    p.add_argument("--seconds", type=float, default=3.0, help="timing per row (default 3)")
    p.add_argument("--windows", type=int, default=1024, help="real windows compared (default 1024)")
    a = p.parse_args(argv)

    from streamad.benchmarks.bench import box_info, data_dir
    from streamad.config import ConfigError
    from streamad.model import resolve_device

    names = [n for n in a.models.split(",") if n]
    bad = set(names) - set(NAMES)
    given = dict(x.split("=", 1) for x in a.model if "=" in x)
    if bad or len(given) != len(a.model):
        raise ConfigError(f"gpu_check: --models from {', '.join(NAMES)}; --model NAME=DIR"
                          + (f" (unknown: {', '.join(sorted(bad))})" if bad else ""))
    resolve_device(a.device)  # a clear error when CUDA is asked for and absent
    batches = list(batch_sizes(a.batches, "gpu_check --batches"))
    data = data_dir(a)
    out = Path(a.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    sig = corpus(data, out)
    res = {**box_info(), "device": a.device, "models": {}}
    for name in names:
        t0 = time.time()
        path = Path(given[name]) if name in given else base_model(out / "models", data, name)
        if name not in given:
            say(f"{name}: model ready in {time.time() - t0:.0f} s ({path})")
        res["models"][name] = check(name, path, sig, a.device, batches, a.seconds, a.windows)
        (out / "gpu_check.json").write_text(json.dumps(res, indent=2))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
