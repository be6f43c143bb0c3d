"""A benchmark producer process: streams ``first .. first+count-1`` of the benchmark recordings as
audio chunks (the wire format of ``streamad replay``), paced in real time or as fast as possible.

    python -m streamad.benchmarks.bench_producer --bootstrap H:P --topic T --corpus corpus.npy \\
        --first 0 --count 250 --seconds 60 [--paced --t0 EPOCH] [--chunk-s 0.1] --report out.json

Paced (the live phase): stream j's chunk k holds the capture interval
``[t0 + phase_j + k*chunk_s, t0 + phase_j + (k+1)*chunk_s)`` and is sent when that interval ends
(a device sends a chunk once it has recorded it); the phases spread the streams evenly over one
chunk period, so the load is smooth and a window's last sample waits on average half a chunk
for its chunk to be sent. Capture timestamps are wall-clock time, so alert latency is
``acknowledged - window end``. Not paced (the backlog phase): capture time starts at ``--t0``
(on the window grid, phase 0) and everything is sent at once.

The report: chunks sent, and how late the sends were against the schedule (a producer that
cannot keep its schedule makes the run invalid: the box is out of CPU before the daemon is).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from streamad.config import KafkaConfig
from streamad.io import kafka as kio
from streamad.io.codecs import encode_audio

SR = 16000
GOLDEN = 0.6180339887
# paced producers' linger_ms: the embedded broker's cost is per request, so a gateway-like 20 ms
# batch (rather than 5) keeps the load generator from taking the box (docs/PERFORMANCE.md)
LINGER_MS = 20


def stream_id(j: int) -> str:
    return f"s{j:05d}"


def spread(j: int) -> float:
    """Stream ``j``'s place in [0, 1) (golden-ratio sequence): even for any number of streams,
    and neighbouring streams never alike. Sets its chunk phase and its start in the corpus."""
    return (j * GOLDEN) % 1.0


def stream_offset(j: int, length: int) -> int:
    """Where stream ``j`` starts in the corpus (samples): spread over all of it, so a few streams
    or a short run hear the same mix of the corpus as the threshold was set on."""
    return int(spread(j) * length)


def chunk_of(sig: np.ndarray, j: int, k: int, n: int) -> np.ndarray:
    """Chunk ``k`` (``n`` samples) of stream ``j``: the corpus from the stream's own offset, looped."""
    start = (stream_offset(j, len(sig)) + k * n) % len(sig)
    if start + n <= len(sig):
        return sig[start:start + n]
    return np.take(sig, np.arange(start, start + n), mode="wrap")


def run(a: argparse.Namespace) -> dict:
    sig = np.load(a.corpus, mmap_mode="r")
    n = int(round(a.chunk_s * SR))
    chunks = int(round(a.seconds / a.chunk_s))
    skip = int(round(a.skip_s / a.chunk_s))
    streams = list(range(a.first, a.first + a.count))
    phase = {j: spread(j) * a.chunk_s if a.paced else 0.0 for j in streams}
    order = sorted(streams, key=phase.get)
    prod = kio.producer(KafkaConfig(), a.bootstrap, acks=1, linger_ms=a.linger_ms if a.paced else 20, retries=3)
    late: list[float] = []
    sent = 0
    failed: list[str] = []  # sends the broker never acknowledged (after the client's retries)

    def lost(exc: BaseException) -> None:
        failed.append(f"{type(exc).__name__}: {exc}"[:200])
    t_start = time.time()
    try:
        for k in range(chunks):
            for j in order:
                ts = a.t0 + phase[j] + k * a.chunk_s
                if a.paced:
                    delay = ts + a.chunk_s - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        late.append(-delay)
                key, value, headers = encode_audio(stream_id(j), chunk_of(sig, j, skip + k, n), SR, ts)
                prod.send(a.topic, key=key, value=value, headers=headers).add_errback(lost)
                sent += 1
        prod.flush(timeout=60)
    finally:
        prod.close(timeout=10)
    lat = np.array(late) if late else np.zeros(1)
    return {"first": a.first, "count": a.count, "chunks_sent": sent, "chunks_failed": len(failed),
            "failures": sorted(set(failed))[:5], "wall_s": round(time.time() - t_start, 2),
            "late_sends": len(late), "late_p99_s": round(float(np.quantile(lat, 0.99)), 4),
            "late_max_s": round(float(lat.max()), 4)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--corpus", required=True, help="float32 .npy of 16 kHz audio")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--chunk-s", type=float, default=0.1)
    p.add_argument("--skip-s", type=float, default=0.0,
                   help="start this far into each stream's audio (a soak segment goes on where the last ended)")
    p.add_argument("--paced", action="store_true")
    p.add_argument("--linger-ms", type=int, default=LINGER_MS,
                   help="paced: a record waits up to this long for others of its batch (a gateway's batching)")
    p.add_argument("--t0", type=float, required=True, help="capture time of the first chunk (epoch s)")
    p.add_argument("--report", required=True)
    a = p.parse_args(argv)
    with open(a.report, "w") as f:
        json.dump(run(a), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
