"""What the embedded broker (Tansu, memory storage) costs to read live records, against the batches a
partition already holds.

A consumer at the head of a topic reads what a producer sends while the topic already holds B
record batches per partition; the broker's CPU (from /proc) over ``--seconds`` is printed for each
B of ``--batches``. No daemon, no model: the broker and two clients only.

    python tools/broker_probe.py --batches 0 2000 5000 10000 20000

It explains the soaks of docs/PERFORMANCE.md ("What a soak costs the embedded broker"): the
broker's cost of answering a fetch grows with the batches the partition holds, so one topic
written for half an hour (the alert topic, an input topic that is never rotated) slows it down
until it stops answering. A real Kafka indexes its logs; this is the embedded broker's limit.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python 3.0.12 at import

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from streamad.benchmarks.bench_env import proc_stats  # noqa: E402
from streamad.broker import EmbeddedBroker  # noqa: E402
from streamad.io.kafka import ensure_topics  # noqa: E402

RECORD = json.dumps({"type": "alert", "stream": "lobby-" + "x" * 40, "window_end": 1.0, "score": 3.2}).encode()


def fill(producer: KafkaProducer, topic: str, partitions: int, batches: int) -> None:
    """``batches`` more batches of one record in every partition (a flush per round: one batch each)."""
    for i in range(batches):
        for p in range(partitions):
            producer.send(topic, RECORD, partition=p)
        producer.flush()
        if (i + 1) % 2000 == 0:
            print(f"  filled {i + 1}/{batches} batches per partition", flush=True)


def live_read(bootstrap: str, topic: str, partitions: int, producer: KafkaProducer, broker_pid: int,
              seconds: float, every_s: float) -> tuple[float, int, int]:
    """Broker CPU (cores) while a producer sends one batch per partition every ``every_s`` and a
    consumer at the head reads them; also the records sent and read."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=10)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_end()
    for tp in tps:
        c.position(tp)
    stop, sent = threading.Event(), [0]

    def produce() -> None:
        while not stop.is_set():
            for p in range(partitions):
                producer.send(topic, RECORD, partition=p)
            producer.flush()
            sent[0] += partitions
            time.sleep(every_s)

    th = threading.Thread(target=produce, daemon=True)
    c0, t0, read = proc_stats([broker_pid])[0], time.monotonic(), 0
    th.start()
    while time.monotonic() - t0 < seconds:
        read += sum(len(r) for r in c.poll(timeout_ms=100).values())
    used = proc_stats([broker_pid])[0] - c0
    stop.set()
    th.join()
    c.close()
    return used / seconds, sent[0], read


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[0, 2000, 5000, 10000, 20000],
                    help="batches per partition before each measurement (ascending; the topic keeps growing)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per point")
    ap.add_argument("--every-ms", type=float, default=20.0, help="live producer: one batch per partition this often")
    a = ap.parse_args(argv)
    if a.batches != sorted(a.batches) or a.batches[0] < 0:
        ap.error("--batches: non-negative and ascending")
    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, ["probe"], a.partitions)
        time.sleep(1.0)
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, linger_ms=0, acks=1)
        held = 0
        print(f"embedded broker, {a.partitions} partitions, live: one batch per partition every {a.every_ms:g} ms, "
              f"{a.seconds:g} s per point", flush=True)
        for target in a.batches:
            fill(producer, "probe", a.partitions, target - held)
            held = target
            cores, sent, read = live_read(b.bootstrap, "probe", a.partitions, producer, b.proc.pid, a.seconds,
                                          a.every_ms / 1000.0)
            held += sent // a.partitions
            print(f"{target:>7} batches per partition held: broker {cores:.2f} cores; "
                  f"{read} of {sent} live records read", flush=True)
        producer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
