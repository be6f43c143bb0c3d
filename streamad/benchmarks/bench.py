"""``streamad bench``: the naive loop and the daemon, backlog and live, in one run on one machine.

    streamad bench --quick            # CI smoke: small sizes, about 2 minutes
    streamad bench                    # the full sweep (about 20 minutes on 2 cores)
    streamad bench --bootstrap H:P    # against a given Kafka instead of the embedded broker
    streamad bench --detector gmgan   # the daemon on a default-size GMGAN instead of the shipped default
    streamad bench --scorer process   # the daemon with worker.scorer: process
    streamad bench --device cuda      # the model phase and the daemon on a GPU (tools/gpu_bench.sh: the GPU set)

Phases (``--phases``, all by default), on the same recordings (the ambient set, 16 kHz) and model:

* ``model``: model-only scoring speed (front end + detector + calibration, one thread, batch 256);
* ``naive``: the loop a user writes without streamad (``bench_naive.py``), on the backlog topic;
* ``backlog``: N streams x T seconds pre-produced, then ``streamad run`` (1 and 2 processes, fresh
  consumer groups) scores them all: windows/s from the first record to the last window, and in the
  steady part (10 %-90 % of the windows);
* ``live``: for each N of the sweep, N streams produced in real time by paced producer processes
  for a few minutes: alert latency p50/p95/p99 (capture of the window's last sample -> alert
  received from the broker), consumer lag over time, CPU, RSS; the sweep stops at the first N the
  daemon cannot keep up with.

Writes ``OUT/performance.json``, ``OUT/performance.md`` (the tables) and ``OUT/performance.png``
(latency and lag against N); ``--docs FILE`` also replaces the generated block of that file.
``--soak MINUTES --soak-streams N`` runs the soak instead (``bench_soak.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

from streamad.benchmarks import bench_report
from streamad.benchmarks.bench_env import (DETECTORS, HOP, SR, WINDOW, DaemonRun, batch_sizes, corpus, daemon_worker,
                                           naive_model, prepare_model, proc_stats, whole_numbers, write_config)
from streamad.benchmarks.bench_live import Ctx, run_live, spawn_producers, wait_producers
from streamad.benchmarks.bench_producer import LINGER_MS
from streamad.config import ConfigError

TS0 = 1_800_000_000.0  # backlog capture time: on the window grid
PHASES = ("model", "naive", "backlog", "live")
ALERT_FRACTION = 0.02  # sweeps: latency measured on many alerts
# The soak: the embedded broker's cost of a fetch grows with the record batches a partition holds
# (tools/broker_probe.py; docs/PERFORMANCE.md, "What a soak costs the embedded broker"), so over half an
# hour the input moves round a ring of topics emptied every few segments, and the one alert topic gets fewer batches.
SOAK_ALERT_FRACTION = 0.0025
SOAK_ROTATE_S = 20.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="CI smoke sizes (about 2 minutes)")
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka to use (default: start the embedded broker)")
    p.add_argument("--out", default="bench-out", metavar="DIR", help="results, model, logs (default bench-out)")
    p.add_argument("--data", metavar="DIR", help="ambient recordings (default ../shared/data/audio/ambient)")
    p.add_argument("--model", metavar="MODEL_DIR", help="audio model to benchmark (default: train one, see --detector)")
    p.add_argument("--detector", choices=DETECTORS, default="default",
                   help="without --model: the daemon's model is the shipped audio default (configs/audio.yaml, "
                        "default), configs/audio-sfx.yaml (sfx) or a default-size GMGAN (gmgan); the naive loop "
                        "always runs a GMGAN")
    p.add_argument("--scorer", choices=("thread", "process"), default="thread",
                   help="the daemon's worker.scorer: score in the worker thread (default) or a child process")
    p.add_argument("--device", default="cpu",
                   help="scoring device of the model phase and the daemon: cpu (default), cuda, cuda:N (the naive "
                        "loop and the alert threshold stay on the CPU)")
    p.add_argument("--max-batch", type=int,
                   help="the daemon's worker.max_batch (default: the config default, 256; with a CUDA --device 4096)")
    p.add_argument("--queue-windows", type=int,
                   help="the daemon's worker.queue_windows (default: the config default, 1024; with a CUDA --device "
                        "8192)")
    p.add_argument("--model-batches", default="256",
                   help="model phase: comma-separated batch sizes (default 256; on a GPU e.g. 256,1024,4096)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--streams", help="live sweep, comma-separated N (default 10,100,300,500,1000,1500,2000,3000; "
                                     "quick: 10,100)")
    p.add_argument("--live-seconds", type=float, help="seconds per live point (default 120; quick 20)")
    p.add_argument("--warmup-s", type=float, help="live seconds not counted (default 15; quick 5)")
    p.add_argument("--backlog-streams", type=int, help="backlog streams (default 100; quick 20)")
    p.add_argument("--backlog-seconds", type=float, help="backlog seconds per stream (default 60; quick 30)")
    p.add_argument("--processes", default="1,2", help="backlog runs with these process counts (default 1,2)")
    p.add_argument("--live-processes", type=int, default=1, help="daemon processes in the live phase (default 1)")
    p.add_argument("--naive-seconds", type=float, help="naive loop measuring time (default 30; quick 10)")
    p.add_argument("--naive-threads", type=int, default=1,
                   help="torch threads of the naive loop (default 1: its best on a shared 2-core box; 0 = torch's "
                        "default)")
    p.add_argument("--chunk-s", type=float, default=0.1, help="seconds of audio per record (default 0.1)")
    p.add_argument("--linger-ms", type=int, default=LINGER_MS,
                   help="live and soak producers: linger_ms, how long a record waits for others of its batch "
                        f"(default {LINGER_MS}: per-request cost dominates the embedded broker's CPU; 5 was used "
                        "before 2026-12-03)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the benchmark topics (default 4)")
    p.add_argument("--alert-fraction", type=float, default=None,
                   help=f"fraction of windows over the benchmark threshold (default {ALERT_FRACTION:g}; the soak "
                        f"{SOAK_ALERT_FRACTION:g}: every alert batch stays in the embedded broker's alert topic, "
                        "whose fetches slow down as it fills)")
    p.add_argument("--docs", metavar="FILE", help="also write the tables into FILE's generated block")
    p.add_argument("--soak", type=float, metavar="MINUTES", help="run the soak instead of the sweep")
    p.add_argument("--soak-streams", type=int, help="streams in the soak (80 %% of the live capacity)")
    p.add_argument("--soak-rotate-s", type=float, default=SOAK_ROTATE_S,
                   help=f"soak: seconds per input topic before the producers move on (default {SOAK_ROTATE_S:g}: "
                        "the embedded broker's fetches slow down as a partition fills with record batches; "
                        "60 was used before 2026-12-05)")


def _defaults(a: argparse.Namespace) -> None:
    q = a.quick
    a.streams = list(whole_numbers(a.streams or ("10,100" if q else "10,100,300,500,1000,1500,2000,3000"),
                                   "bench --streams", "stream counts"))
    a.live_seconds = a.live_seconds or (20.0 if q else 120.0)
    a.warmup_s = a.warmup_s if a.warmup_s is not None else (5.0 if q else 15.0)
    if a.alert_fraction is None:
        a.alert_fraction = SOAK_ALERT_FRACTION if a.soak else ALERT_FRACTION
    if not 0 < a.alert_fraction < 1:
        raise ConfigError(f"bench --alert-fraction: between 0 and 1 (exclusive), got {a.alert_fraction:g}")
    a.backlog_streams = a.backlog_streams or (20 if q else 100)
    a.backlog_seconds = a.backlog_seconds or (30.0 if q else 60.0)
    a.naive_seconds = a.naive_seconds or (10.0 if q else 30.0)
    a.phases = [x for x in a.phases.split(",") if x]
    a.process_counts = list(whole_numbers(a.processes, "bench --processes", "process counts"))
    a.model_batches = batch_sizes(a.model_batches, "bench --model-batches")
    bad = set(a.phases) - set(PHASES)
    if bad:
        raise ConfigError(f"bench --phases: unknown {', '.join(sorted(bad))} (choose from {', '.join(PHASES)})")


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def box_info() -> dict:
    info = {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
    try:
        cpu = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        info["cpu_model"] = cpu[0].split(":", 1)[1].strip() if cpu else None
    except OSError:
        pass
    import torch

    info.update(torch=torch.__version__, cuda=torch.cuda.is_available(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return info


def model_phase(model: Path, seconds: float, device: str = "cpu", batches: tuple[int, ...] = (256,)) -> dict:
    """Model-only windows/s on one thread at each batch size; the first batch size's row is the
    headline (``windows_per_s``), every row is kept under ``by_batch``."""
    import torch

    from streamad.benchmarks.throughput import measure
    from streamad.model import AnomalyModel

    torch.set_num_threads(1)
    m = AnomalyModel.load(model, device=device)
    rows = [measure(m, b, seconds, show=False) for b in batches]
    return {**rows[0], "by_batch": rows} if len(rows) > 1 else rows[0]


def naive_phase(ctx: Ctx, topic: str, windows: int, seconds: float, threads: int) -> dict:
    import subprocess

    report = ctx.out / "naive.json"
    cmd = [sys.executable, "-m", "streamad.benchmarks.bench_naive", "--bootstrap", ctx.bootstrap, "--topic", topic,
           "--group", f"naive-{uuid.uuid4().hex[:6]}", "--model", str(ctx.naive_model or ctx.model),
           "--seconds", str(seconds),
           "--warmup", str(min(50, windows // 4)), "--threads", str(threads), "--report", str(report)]
    t0 = time.time()
    p = subprocess.Popen(cmd)
    peak = 0.0
    while p.poll() is None:
        peak = max(peak, proc_stats([p.pid])[1])
        time.sleep(0.5)
    if p.returncode != 0:
        raise RuntimeError(f"naive loop exited with {p.returncode}")
    res = json.loads(report.read_text())
    res.update(rss_mb_max=round(peak, 1), wall_s=round(time.time() - t0, 1), live_streams=int(res["windows_per_s"] / 2))
    return res


def produce_backlog(ctx: Ctx, streams: int, seconds: float) -> tuple[str, int, dict]:
    """The backlog topic, pre-produced: (topic, windows it holds, what the producers sent and saw fail
    and the broker's census of it)."""
    topic = ctx.topics("backlog")
    procs = spawn_producers(ctx, topic, streams, seconds, TS0, paced=False, per_process=max(1, streams // 2))
    reports = wait_producers(procs)  # says so when the broker did not acknowledge some chunks
    produced = {"sent": sum(r["chunks_sent"] for r in reports),
                "failed": sum(r.get("chunks_failed", 0) for r in reports), "census": topic_census(ctx.bootstrap, topic)}
    windows = streams * (1 + (int(seconds * SR) - WINDOW) // HOP)
    held = produced["census"]
    if held["chunks"] != produced["sent"] - produced["failed"] or held["duplicate_records"]:
        say(f"  the broker holds {held['chunks']} distinct chunks ({held['records']} records) of the "
            f"{produced['sent'] - produced['failed']} it acknowledged: the backlog is timed on the {held['windows']} "
            f"windows they make, not {windows}")
        windows = held["windows"]
    return topic, windows, produced


def topic_census(bootstrap: str, topic: str, idle_s: float = 3.0) -> dict:
    """What the broker holds of a benchmark topic, read from the start without a consumer group:
    records, distinct chunks (stream, capture time), streams, gaps, and the windows the daemon can cut
    from them (each stream's chunks pushed through ``AudioStreamBuffer``, the daemon's own rules).
    Tells a backlog that never fully reached the broker, or reached it twice (a producer's retry),
    from a daemon that stopped short."""
    import numpy as np
    from kafka import KafkaConsumer, TopicPartition

    from streamad.config import AudioConfig
    from streamad.windows.audio_buffer import AudioStreamBuffer

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      auto_offset_reset="earliest", consumer_timeout_ms=int(idle_s * 1000))
    try:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        c.assign(parts)
        c.seek_to_beginning()
        records, chunks, served = 0, {}, {}
        for r in c:
            records += 1
            ts = dict(r.headers or ()).get("timestamp", b"nan")
            chunks[(r.key, ts)] = len(r.value or b"") // 2  # int16 mono samples
            n, last, jumps = served.get(r.partition, (0, -1, 0))
            served[r.partition] = (n + 1, r.offset, jumps + (last >= 0 and r.offset != last + 1))
        ends = c.end_offsets(parts) if parts else {}
    finally:
        c.close()
    # per partition: records served, the offset after the last one served, the broker's end offset, and
    # jumps in the offsets served (none in a topic without compaction or transactions)
    offsets = {}
    for tp in parts:
        n, last, jumps = served.get(tp.partition, (0, -1, 0))
        offsets[tp.partition] = {"served": n, "next": last + 1, "end": ends.get(tp), "jumps": int(jumps)}
    # the windows a daemon cuts from those chunks: each stream's chunks through the daemon's own buffer
    # (its gap and segment rules), in capture order
    spans: dict = {}
    for (key, ts), n in chunks.items():
        spans.setdefault(key, []).append((float(ts), n))
    tol = int(round(AudioConfig().gap_tolerance_s * SR))
    windows, gaps = 0, 0
    for key, runs in spans.items():
        buf = AudioStreamBuffer(str(key), SR, WINDOW, HOP, tol)
        for ts, n in sorted(runs):
            windows += len(buf.push(np.zeros(n, dtype=np.float32), ts))
        gaps += buf.stats.gaps
    return {"records": records, "chunks": len(chunks), "duplicate_records": records - len(chunks),
            "partitions": len(parts), "streams": len(spans), "gaps": gaps, "windows": windows, "offsets": offsets}


STALL_S = 60.0  # backlog: no new window for this long once scoring began = stalled, stop waiting


def backlog_run(ctx: Ctx, topic: str, windows: int, processes: int, timeout: float = 900.0,
                produced: dict | None = None) -> dict:
    """A fresh group scores the whole backlog; sampled every 0.1 s through /metrics and /proc
    (``produced``: chunks the producers sent and saw fail, for the report of a stall)."""
    cfg = write_config(ctx.out / f"backlog-{processes}.yaml", topic, f"bench-backlog-{uuid.uuid4().hex[:6]}",
                       ctx.model, ctx.embedded, device=ctx.device, scorer=ctx.scorer, **(ctx.worker or {}))
    d = DaemonRun(cfg, ctx.bootstrap, ctx.out / f"daemon-backlog-{processes}.log", ctx.port(processes), processes)
    d.start(wait=False)
    rows, t_start = [], time.time()
    last_change, last_windows, stalled = time.time(), -1.0, False
    try:
        while time.time() - t_start < timeout:
            time.sleep(0.1)
            if d.proc is not None and d.proc.poll() is not None:
                say(f"  backlog x{processes}: the daemon exited ({d.proc.returncode}); see {d.log}")
                break
            try:
                m = d.totals()
            except OSError:
                continue
            if m.get("streamad_windows_scored_total", 0.0) != last_windows:
                last_change, last_windows = time.time(), m.get("streamad_windows_scored_total", 0.0)
            elif last_windows > 0 and time.time() - last_change > STALL_S:
                say(f"  backlog x{processes}: no window scored for {STALL_S:.0f} s at {last_windows:.0f}/{windows}")
                stalled = m.get("streamad_consumer_lag")  # records the daemon had not read (fetch high watermarks)
                break
            cpu, rss = proc_stats(d.pids())
            rows.append((time.time(), m.get("streamad_records_total", 0.0),
                         m.get("streamad_windows_scored_total", 0.0), cpu, rss))
            if rows[-1][2] >= windows:
                break
            if len(rows) % 50 == 0:
                say(f"  backlog x{processes}: {rows[-1][2]:.0f}/{windows} windows")
    finally:
        rc = d.stop()
    res = bench_report.backlog_summary(rows, windows, processes, rc)
    if stalled is not False:
        res["topic"] = topic_census(ctx.bootstrap, topic)
        res["records_read"] = rows[-1][1] if rows else 0
        res["lag_at_stall"] = stalled
        sent = f" of the {produced['sent']} chunks sent ({produced['failed']} not acknowledged)" if produced else ""
        say(f"  backlog x{processes}: the topic holds {res['topic']['records']} records, "
            f"{res['topic']['chunks']} distinct chunks{sent}; the daemon read {res['records_read']:.0f} records, "
            f"lag {stalled}")
    return res


SETTINGS = ("quick", "detector", "scorer", "device", "max_batch", "queue_windows", "streams", "live_seconds",
            "warmup_s", "backlog_streams", "backlog_seconds", "chunk_s", "partitions", "alert_fraction", "naive_seconds", "naive_threads", "live_processes", "linger_ms")


def data_dir(a: argparse.Namespace) -> Path:
    return Path(a.data) if a.data else Path.cwd().parent / "shared" / "data" / "audio" / "ambient"


def run(a: argparse.Namespace) -> int:
    _defaults(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.soak:
        from streamad.benchmarks.bench_soak import soak

        return soak(a, out, say)
    argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else []
    res: dict = {"command": "streamad bench " + shlex.join(argv), "box": box_info(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "settings": {k: getattr(a, k) for k in SETTINGS}}
    from streamad.broker import EmbeddedBroker

    broker = None if a.bootstrap else EmbeddedBroker().start()
    try:
        ctx = Ctx.from_args(a, out, broker, say, scorer=a.scorer, device=a.device, worker=daemon_worker(a))
        say(f"broker {ctx.bootstrap}; preparing recordings and the benchmark model")
        sig = corpus(data_dir(a), out)
        ctx.model, res["model"] = prepare_model(out, data_dir(a), sig, Path(a.model) if a.model else None,
                                                a.alert_fraction, a.detector)
        if "naive" in a.phases:
            ctx.naive_model = naive_model(out, data_dir(a), ctx.model)
            res["naive_model"] = json.loads((ctx.naive_model / "model.json").read_text())["model_version"]
        _phases(a, ctx, res)
    finally:
        if broker:
            broker.stop()
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res["box"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    bench_report.write_all(res, out, Path(a.docs) if a.docs else None)
    say(f"results: {out / 'performance.json'}, {out / 'performance.md'}, {out / 'performance.png'}")
    print(bench_report.markdown(res))
    return 0


def _partial(out: Path, res: dict) -> None:
    """The results so far, after each point (``OUT/performance.partial.json``): a sweep stopped
    midway keeps what it measured."""
    (out / "performance.partial.json").write_text(json.dumps(res, indent=1, default=str))


def _phases(a: argparse.Namespace, ctx: Ctx, res: dict) -> None:
    if "model" in a.phases:
        say(f"model-only scoring speed (1 thread, {a.device}, batch {'/'.join(map(str, a.model_batches))})")
        res["model_only"] = model_phase(ctx.model, 5.0 if a.quick else 15.0, a.device, a.model_batches)
        say(f"  {res['model_only']['windows_per_s']} windows/s")
    if {"naive", "backlog"} & set(a.phases):
        say(f"producing the backlog: {a.backlog_streams} streams x {a.backlog_seconds:.0f} s")
        topic, windows, produced = produce_backlog(ctx, a.backlog_streams, a.backlog_seconds)
        res["backlog_topic"] = produced
        if "naive" in a.phases:
            say(f"naive loop ({a.naive_seconds:.0f} s after warm-up)")
            res["naive"] = naive_phase(ctx, topic, windows, a.naive_seconds, a.naive_threads)
            say(f"  {res['naive']['windows_per_s']} windows/s")
        if "backlog" in a.phases:
            res["backlog"] = []
            for n in a.process_counts:
                say(f"backlog: {windows} windows, {n} process(es)")
                res["backlog"].append(backlog_run(ctx, topic, windows, n, produced=produced))
                say(f"  {res['backlog'][-1]['windows_per_s']} windows/s end to end")
                _partial(ctx.out, res)
        ctx.drop_topics(topic)
    if "live" in a.phases:
        res["live"] = []
        for n in a.streams:
            say(f"live: {n} streams for {a.live_seconds:.0f} s")
            r = run_live(ctx, n, a.live_seconds, a.warmup_s, a.live_processes)
            res["live"].append(r)
            _partial(ctx.out, res)
            say(f"  p50/p95/p99 {r['latency']['p50_s']}/{r['latency']['p95_s']}/{r['latency']['p99_s']} s, "
                f"lag max {r.get('lag_max')}: {r['verdict']}")
            if not r["keeps_up"]:
                break


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="streamad bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
