"""The reference a user writes without streamad (the issue's "naive loop"), inside the benchmark.

A kafka-python consumer with its defaults, a numpy buffer per stream, and per window: librosa's
log-mel spectrogram and one forward pass of a GANomaly-sized network (encoder -> decoder ->
encoder, the benchmark model's own weights) on that one window; an alert is produced when the
score is over the threshold. Nothing is batched, nothing overlaps.

    python -m streamad.benchmarks.bench_naive --bootstrap H:P --topic T --model DIR --seconds 30 --report out.json

Measured: windows scored per second after the first ``--warmup`` windows (model and librosa warm-up).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import defaultdict

import numpy as np

SR, WINDOW, HOP = 16000, 16000, 8000


def load_net(model_dir: str):
    """The GANomaly generator of the benchmark model, as a user would rebuild it: G_E, G_D, E."""
    import torch

    from streamad.model import AnomalyModel

    m = AnomalyModel.load(model_dir, device="cpu")
    ge, gd, e = (m.detector.nets[k] for k in ("ge", "gd", "e"))
    fe = m.frontend
    mean, std = fe.mean.numpy(), fe.std.numpy()

    def score(logmel: np.ndarray) -> float:
        x = torch.from_numpy(((logmel - mean) / std).astype(np.float32))[None, None]
        with torch.no_grad():
            z, _ = ge(x)
            xr = gd(z)
            zr, _ = e(xr)
        return float((x - xr).abs().mean() + (z - zr).square().mean())

    return score, fe, float(m.threshold)


def run(a: argparse.Namespace) -> dict:
    import librosa
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer, KafkaProducer

    if a.threads:
        torch.set_num_threads(a.threads)
    score, fe, thr = load_net(a.model)
    consumer = KafkaConsumer(a.topic, bootstrap_servers=a.bootstrap, group_id=a.group, auto_offset_reset="earliest",
                             session_timeout_ms=2000, heartbeat_interval_ms=600,  # (the embedded broker's joins)
                             consumer_timeout_ms=10000)  # the topic ran out: stop
    producer = KafkaProducer(bootstrap_servers=a.bootstrap)
    buffers: dict[bytes, np.ndarray] = defaultdict(lambda: np.zeros(0, dtype=np.float32))
    stamps: list[float] = []  # when each window was scored
    try:
        for msg in consumer:
            x = np.frombuffer(msg.value, dtype="<i2").astype(np.float32) / 32768.0
            buf = np.concatenate([buffers[msg.key], x])
            while len(buf) >= WINDOW:
                w, buf = buf[:WINDOW], buf[HOP:]
                mel = librosa.feature.melspectrogram(y=w, sr=SR, n_fft=fe.n_fft, hop_length=fe.hop_length,
                                                     n_mels=fe.cfg.n_mels, fmin=fe.cfg.fmin, center=False)
                s = score(librosa.power_to_db(mel[:, :fe.frames]))
                if s > thr:
                    producer.send(a.topic + "-naive-alerts", key=msg.key, value=json.dumps({"score": s}).encode())
                stamps.append(time.perf_counter())
            buffers[msg.key] = buf
            if len(stamps) > a.warmup and stamps[-1] - stamps[a.warmup] > a.seconds:
                break
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=5)
    n = len(stamps) - 1 - a.warmup  # windows scored after the clock started at window `warmup`
    dt = stamps[-1] - stamps[a.warmup] if n > 0 else 0.0
    return {"windows": max(0, n), "seconds": round(dt, 2), "windows_per_s": round(n / dt, 1) if dt > 0 else None,
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", default="naive")
    p.add_argument("--model", required=True)
    p.add_argument("--seconds", type=float, default=30.0, help="measure this long after the warm-up")
    p.add_argument("--warmup", type=int, default=50, help="windows before the clock starts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default, as a new user has it)")
    p.add_argument("--report", required=True)
    a = p.parse_args(argv)
    with open(a.report, "w") as f:
        json.dump(run(a), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
