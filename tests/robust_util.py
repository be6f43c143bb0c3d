"""Helpers for the hostile-input and broker-loss tests (issue 9): a producer that writes what
kafka-python's own producer refuses (null header values, header names that are not UTF-8), and
readers for the dead-letter topic and the daemon's stats lines. Real broker, no mocks."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kafka import KafkaProducer
from kafka.record import default_records

from tests import kafka_util as K


class RawName(str):
    """A header name whose bytes on the wire are ``raw`` (e.g. not UTF-8)."""

    def __new__(cls, raw: bytes):
        obj = super().__new__(cls, raw.decode("latin-1"))
        obj.raw = raw
        return obj

    def encode(self, *_a, **_k) -> bytes:
        return self.raw


class Null(bytes):
    """A header value written as null on the wire (other clients can; kafka-python's producer refuses)."""


@contextlib.contextmanager
def null_header_values():
    """While active, this process's producers write ``Null()`` header values as null."""
    orig = default_records.DefaultRecordBatchBuilder.append

    def append(self, offset, timestamp, key, value, headers, *a, **k):
        headers = [(n, None if isinstance(v, Null) else v) for n, v in headers]
        return orig(self, offset, timestamp, key, value, headers, *a, **k)

    default_records.DefaultRecordBatchBuilder.append = append
    try:
        yield
    finally:
        default_records.DefaultRecordBatchBuilder.append = orig


def fast_producer(bootstrap: str, max_request_size: int = 64 * 1024 * 1024) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=10, batch_size=1024 * 1024,
                         max_request_size=max_request_size)


def send_all(prod: KafkaProducer, topic: str, records, partition: int | None = None) -> list:
    """Send (key, value, headers) records in order; their RecordMetadata."""
    futs = [prod.send(topic, key=k, value=v, headers=h, partition=partition) for k, v, h in records]
    prod.flush()
    return [f.get(timeout=60) for f in futs]


def dead_letters(bootstrap: str, topic: str, idle_s: float = 1.0) -> list[dict]:
    """The dead-letter topic as dicts: key, value, headers (name -> bytes), offset."""
    out = []
    for r in K.read_topic(bootstrap, topic, idle_s=idle_s, max_s=60):
        h = {}
        for n, v in r.headers:
            h[n] = v
        out.append({"key": r.key, "value": r.value, "headers": h, "partition": r.partition, "offset": r.offset})
    return out


def stats_lines(log: Path) -> list[dict]:
    """Every JSON object of the daemon's ``stats`` and ``stopped cleanly`` lines, in order."""
    out = []
    for line in Path(log).read_text(errors="replace").splitlines():
        m = re.search(r"(?:stats|stopped cleanly;) (\{.*\})$", line)
        if m:
            out.append(json.loads(m.group(1)))
    return out


def start_run(args: list[str], log: Path, env_extra: dict | None = None) -> subprocess.Popen:
    """``streamad run ARGS`` as a process of its own (stderr appended to ``log``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", *args], stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"), env=env, start_new_session=True)


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def kill_quietly(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)


def wait_line(log: Path, text: str, timeout: float = 90, proc: subprocess.Popen | None = None,
              count: int = 1) -> float:
    """Wait until ``text`` appears ``count`` times in the log; returns the time waited."""
    t0 = time.time()
    K.wait_for(lambda: Path(log).read_text(errors="replace").count(text) >= count, timeout=timeout, proc=proc,
               log=log)
    return time.time() - t0
