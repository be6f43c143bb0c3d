"""Daemon memory with many stream keys (issue 9): ``python -m streamad.benchmarks.stream_memory
--model MODEL_DIR [--keys 10000] [--chunks 9] [--max-streams 2000]``.

Starts the embedded broker and ``streamad run`` (a subprocess), publishes ``--keys`` distinct
streams of ``--chunks`` 0.1 s chunks each (9: every stream holds a partial window of 0.9 s, the
most a stream can hold without completing a window; ``--order key`` sends one stream after the
other, ``round`` interleaves them all), waits until the daemon has read them all
and prints one JSON line: the daemon's resident memory (VmRSS, VmHWM) before and after, the
streams it holds and evicted. Not a test: a measurement.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from streamad.broker import EmbeddedBroker, free_port
from streamad.io.codecs import encode_audio
from streamad.io.kafka import ensure_topics


def _rss(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: round(int(re.search(rf"{k}:\s+(\d+) kB", status).group(1)) / 1024, 1) for k in ("VmRSS", "VmHWM")}


def _records(port: int) -> float:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1
    return sum(float(m) for m in re.findall(r"^streamad_records_total\{[^}]*\} (\S+)$", text, re.M))


def _wait(pred, timeout: float) -> None:
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise TimeoutError("the daemon did not get there in time")
        time.sleep(0.5)


def run(model: str, keys: int, chunks: int, max_streams: int, work: Path, order: str = "round") -> dict:
    from kafka import KafkaProducer

    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, ["mem", "mem-alerts", "mem-dlq"], 1)
        cfg = {"kafka": {"input_topics": ["mem"], "alert_topic": "mem-alerts", "dead_letter_topic": "mem-dlq",
                         "group_id": "mem", "session_timeout_ms": 2000, "heartbeat_interval_ms": 600,
                         "max_poll_records": 2000},
               "model": {"path": model}, "worker": {"max_streams": max_streams}}
        (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        log, port = work / "daemon.log", free_port()
        proc = subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", "--config", str(work / "cfg.yaml"),
                                 "--bootstrap", b.bootstrap, "--device", "cpu", "--metrics-port", str(port)],
                                stderr=open(log, "wb"), stdout=subprocess.DEVNULL)
        try:
            _wait(lambda: "partitions assigned" in log.read_text(), 120)
            time.sleep(2)
            before = _rss(proc.pid)
            prod = KafkaProducer(bootstrap_servers=b.bootstrap, acks=1, linger_ms=20, batch_size=1 << 20)
            x = (0.05 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32)
            pairs = [(k, c) for c in range(chunks) for k in range(keys)] if order == "round" else \
                [(k, c) for k in range(keys) for c in range(chunks)]
            for k, c in pairs:
                key, value, headers = encode_audio(f"mic-{k}", x, 16000, 1_800_000_000.0 + c * 0.1)
                prod.send("mem", key=key, value=value, headers=headers, partition=0)
            prod.flush()
            prod.close()
            t0 = time.time()
            _wait(lambda: _records(port) >= keys * chunks, 900)
            drain = time.time() - t0
            after = _rss(proc.pid)
            proc.send_signal(2)  # SIGINT: finish, commit, print the final stats line
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        stats = json.loads(re.findall(r"stopped cleanly; (\{.*\})", text)[-1])
        return {"keys": keys, "chunks_per_key": chunks, "order": order, "max_streams": max_streams,
                "records": stats["records"],
                "rss_before_mb": before["VmRSS"], "rss_after_mb": after["VmRSS"], "peak_rss_mb": after["VmHWM"],
                "streams_held": stats["streams"], "evicted": stats["evicted_streams"], "drain_s": round(drain, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--keys", type=int, default=10000)
    p.add_argument("--chunks", type=int, default=9)
    p.add_argument("--max-streams", type=int, default=2000)
    p.add_argument("--order", choices=("round", "key"), default="round",
                   help="round: chunk c of every key, then c+1 (all keys live at once); key: one key after another")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(run(a.model, a.keys, a.chunks, a.max_streams, Path(d), a.order)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
