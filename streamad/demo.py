"""``streamad demo``: the whole product on the embedded default.

1. start the embedded broker;
2. train GMGAN on 3/4 of the ambient recordings (progress bar);
3. start the daemon (``streamad run``, a real subprocess);
4. replay the held-back ambient recordings as one live stream with glass-break
   and baby-cry recordings mixed in at known times;
5. print alerts as they arrive, then a summary: events inserted / alerted, false
   alerts, alert latency p50/p95; write demo-out/report.json; the daemon writes the evidence of
   every alert under demo-out/evidence/ (PNG: input patch, reconstruction, residual; WAV: the event).
"""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from streamad.io.files import InputError, default_data_dir, list_audio, load_audio


DEMO_TOPIC = "audio"


def _config_path(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / "configs" / "audio.yaml").is_file():
            return base / "configs" / "audio.yaml"
    return None


def _say(msg: str) -> None:
    print(msg, flush=True)


class AlertReader(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, ts0: float, events: list[dict]):
        super().__init__(daemon=True)
        from kafka import KafkaConsumer, TopicPartition

        self.c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                               auto_offset_reset="earliest", fetch_max_wait_ms=20)
        parts = self.c.partitions_for_topic(topic) or {0}
        self.c.assign([TopicPartition(topic, p) for p in parts])
        self.c.seek_to_beginning()
        self.alerts: list[dict] = []
        self.stop = False
        self.ts0 = ts0
        self.events = events

    def run(self) -> None:
        while not self.stop:
            for recs in self.c.poll(timeout_ms=100).values():
                for r in recs:
                    al = json.loads(r.value)
                    if al.get("type") != "alert":  # event_closed records pair with an alert by id
                        continue
                    al["_received"] = time.time()
                    self.alerts.append(al)
                    t = al["window_start"] - self.ts0
                    hit = next((e for e in self.events if al["window_start"] < e["end_ts"] and
                                al["window_end"] > e["start_ts"]), None)
                    what = f"event #{hit['n']} {hit['kind']}" if hit else "no inserted event here"
                    _say(f"  ALERT  stream={al['stream_id']}  t={t:6.1f}s  score={al['score']:.1f} "
                         f"(threshold {al['threshold']:.1f})  -> {what}")
        self.c.close()


@dataclass
class DemoPlan:
    cfg: Any
    work: Path
    train_files: list[Path]
    replay_files: list[Path]
    pools: list[tuple[str, list[Path]]]  # (event kind, files)


def _check_args(a: Any) -> None:
    """One-line InputError for demo settings no demo can run with."""
    def bad(v: Any, ok: bool, what: str) -> None:
        if not ok:
            raise InputError(f"demo: {what}, got {v}")

    bad(a.speed, math.isfinite(a.speed) and a.speed > 0, "--speed must be a replay speed > 0 (x real time)")
    bad(a.ebr, math.isfinite(a.ebr) and -60 <= a.ebr <= 60, "--ebr must be -60..60 dB")
    bad(a.n_events, a.n_events >= 1, "--n-events must be >= 1")
    bad(a.seed, a.seed >= 0, "--seed must be >= 0")
    bad(a.steps, a.steps is None or a.steps >= 1, "--steps must be >= 1")


def _plan(a: Any) -> DemoPlan:
    from streamad.config import from_dict, load

    _check_args(a)
    data = default_data_dir()
    ambient_dir = Path(a.ambient) if a.ambient else data / "audio" / "ambient"
    event_dirs = [Path(e) for e in a.events] if a.events else [data / "audio" / "glass-sfx", data / "audio" / "babycry"]
    cfg_path = _config_path(a.config)
    cfg = load(cfg_path) if cfg_path else from_dict({})
    if cfg.kind != "audio":
        raise InputError("demo: needs an audio config")
    if a.steps:
        from streamad.models.registry import DETECTORS

        det = DETECTORS.get(cfg.model.detector)
        if det is None or "steps" in det.defaults:  # unknown detector: let training name it
            cfg.model.params["steps"] = a.steps
    work = Path(a.work)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"demo: --work {work}: {e.strerror or e}") from None
    amb = list_audio([ambient_dir])
    if len(amb) < 4:
        raise InputError(f"demo: need at least 4 ambient recordings in {ambient_dir}, found {len(amb)}")
    replay_files = amb[3::4]
    pools = []
    for d in event_dirs:
        files = list_audio([d])
        if not files:
            raise InputError(f"demo: no event recordings in {d}")
        pools.append((d.name, files))
    return DemoPlan(cfg, work, [f for f in amb if f not in replay_files], replay_files, pools)


def _live_signal(plan: DemoPlan, a: Any) -> tuple[np.ndarray, list[dict]]:
    """The held-back ambient recordings as one stream, with events mixed in at known times."""
    from streamad.evaluation.mixing import mix_event, trim_event

    sr = plan.cfg.audio.sample_rate
    rng = np.random.default_rng(a.seed)
    sig = np.concatenate([load_audio(f, sr) for f in plan.replay_files])
    dur = len(sig) / sr
    n_ev = max(1, min(a.n_events, int(dur // 8)))
    slot = dur / n_ev
    events = []
    for i in range(n_ev):
        kind, files = plan.pools[i % len(plan.pools)]
        f = files[int(rng.integers(len(files)))]
        ev = trim_event(load_audio(f, sr), sr, 3.0)
        start_s = i * slot + float(rng.uniform(1.5, max(1.6, slot - len(ev) / sr - 2.5)))
        sig = mix_event(sig, ev, int(start_s * sr), a.ebr)
        events.append({"n": i + 1, "kind": kind, "file": f.name, "start_s": start_s, "end_s": start_s + len(ev) / sr})
    return sig, events


def _start_daemon(plan: DemoPlan, bootstrap: str, model_dir: Path) -> subprocess.Popen:
    from streamad.io import kafka as kio

    cfg, work = plan.cfg, plan.work
    kio.ensure_topics(bootstrap, [DEMO_TOPIC, cfg.kafka.alert_topic, cfg.kafka.dead_letter_topic],
                      cfg.kafka.partitions)
    d = cfg.to_dict()
    d["kafka"].update(input_topics=[DEMO_TOPIC], group_id=f"demo-{int(time.time())}", session_timeout_ms=2000,
                      heartbeat_interval_ms=600, bootstrap_servers=bootstrap)
    d["model"]["path"] = str(model_dir)
    d["alerts"]["evidence_dir"] = str(work / "evidence")  # a PNG per alert, a WAV per event
    run_cfg = work / "run.yaml"
    run_cfg.write_text(yaml.safe_dump(d))
    (work / "scores.jsonl").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", "--config", str(run_cfg),
                             "--score-log", str(work / "scores.jsonl")], stdout=subprocess.DEVNULL,
                            stderr=open(work / "daemon.log", "wb"), start_new_session=True)
    _wait_log(work / "daemon.log", "partitions assigned", proc, 60)
    return proc


def _wait_scored(score_log: Path, n_windows: int, idle_s: float = 10.0, max_s: float = 60.0) -> None:
    """Until every window is scored, or nothing moved for ``idle_s``."""
    t_wait, seen, t0 = time.time(), -1, time.time()
    while time.time() - t0 < max_s:
        now = len(score_log.read_text().splitlines()) if score_log.exists() else 0
        if now >= n_windows:
            return
        if now != seen:
            seen, t_wait = now, time.time()
        if time.time() - t_wait > idle_s:
            return
        time.sleep(0.2)


def run_demo(a: Any) -> int:
    from streamad.broker import EmbeddedBroker
    from streamad.config import KafkaConfig
    from streamad.io import kafka as kio
    from streamad.io.replay import replay_signal
    from streamad.train import load_recordings, train_model

    t_start = time.monotonic()
    plan = _plan(a)
    cfg, work, sr = plan.cfg, plan.work, plan.cfg.audio.sample_rate
    _say(f"streamad demo: {len(plan.train_files)} ambient recordings to train on, {len(plan.replay_files)} held "
         f"back to replay; events from {', '.join(n for n, _ in plan.pools)}")
    broker = EmbeddedBroker().start()
    _say(f"[1/4] embedded broker up at {broker.bootstrap}")
    daemon = None
    try:
        _say(f"[2/4] training {cfg.model.detector} on {len(plan.train_files)} recordings ...")
        model = train_model(cfg, load_recordings(cfg, plan.train_files), work / "model", show_progress=True)
        _say(f"      model {model.version}: threshold {model.threshold:.2f} "
             f"(target {cfg.alerts.target_false_alerts_per_hour:g} false alert/h), "
             f"trained in {model.meta['training']['fit_wall_s']:.0f} s")
        sig, events = _live_signal(plan, a)
        daemon = _start_daemon(plan, broker.bootstrap, work / "model")
        _say(f"[3/4] daemon running (pid {daemon.pid}, log {work / 'daemon.log'})")
        hop_s = model.frontend.hop / sr
        ts0 = float(np.ceil(time.time() / hop_s) * hop_s)  # on the window grid
        for e in events:
            e["start_ts"], e["end_ts"] = ts0 + e["start_s"], ts0 + e["end_s"]
        reader = AlertReader(broker.bootstrap, cfg.kafka.alert_topic, ts0, events)
        reader.start()
        _say(f"[4/4] replaying {len(sig) / sr:.0f} s of ambient audio with {len(events)} events (EBR {a.ebr:+g} dB) "
             f"at {a.speed:g}x real time")
        for e in events:
            _say(f"      event #{e['n']:2d} {e['kind']:9s} at {e['start_s']:6.1f}-{e['end_s']:5.1f}s  ({e['file']})")
        sent: list[tuple[int, float]] = []
        prod = kio.producer(KafkaConfig(), broker.bootstrap)
        replay_signal(prod, DEMO_TOPIC, "lobby", sig, sr, start_ts=ts0, speed=a.speed, chunk_s=0.1,
                      on_chunk=lambda i, ts, w: sent.append((i, w)))
        prod.close()
        fe = model.frontend
        n_windows = 1 + (len(sig) - fe.window) // fe.hop
        _wait_scored(work / "scores.jsonl", n_windows)
        time.sleep(0.5)
        reader.stop = True
        reader.join(timeout=5)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=30)
        summary = _summary(events, reader.alerts, sent, sr, ts0, fe.window, n_windows, rc, len(sig) / sr, a)
        _finish(summary, model, reader.alerts, work, t_start)
        return 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        broker.stop()


def _finish(summary: dict, model, alerts: list[dict], work: Path, t_start: float) -> None:
    score_log = work / "scores.jsonl"
    summary["windows_scored"] = len(score_log.read_text().splitlines()) if score_log.exists() else 0
    summary["wall_s"] = round(time.monotonic() - t_start, 1)
    summary["model"] = model.version
    evidence = [al.get("evidence", {}) for al in alerts]
    summary["evidence_png"] = [e["png"] for e in evidence if e.get("png") and Path(e["png"]).exists()]
    summary["evidence_wav"] = [e["wav"] for e in evidence if e.get("wav") and Path(e["wav"]).exists()]
    (work / "report.json").write_text(json.dumps(summary, indent=2))
    _print_summary(summary)


def _wait_log(path: Path, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise InputError(f"demo: the daemon exited ({proc.returncode}); see {path}")
        time.sleep(0.1)
    raise InputError(f"demo: the daemon did not start within {timeout:.0f} s; see {path}")


def _summary(events, alerts, sent, sr, ts0, window, n_windows, rc, dur, a) -> dict:
    idx = np.array([i for i, _ in sent])
    wall = np.array([w for _, w in sent])

    def sent_wall(sample: int) -> float:  # wall time the chunk holding this sample was published
        j = int(np.searchsorted(idx, sample, side="right") - 1)
        return float(wall[max(0, j)])

    lat_total, lat_proc, found, false = [], [], 0, 0
    used = set()
    for e in events:
        hits = [al for al in alerts if al["window_start"] < e["end_ts"] and al["window_end"] > e["start_ts"]]
        if hits:
            found += 1
            al = min(hits, key=lambda x: x["_received"])
            used.update(id(h) for h in hits)
            lat_total.append(al["_received"] - sent_wall(int(e["start_s"] * sr)))
            end_sample = int(round((al["window_end"] - ts0) * sr)) - 1
            lat_proc.append(al["_received"] - sent_wall(end_sample))
        e["alerted"] = bool(hits)
    false = sum(1 for al in alerts if id(al) not in used)
    pct = lambda v, q: round(float(np.percentile(v, q)), 3) if v else None  # noqa: E731
    return {
        "events_inserted": len(events), "events_alerted": found, "false_alerts": false,
        "alerts": len(alerts), "windows_expected": int(n_windows), "daemon_exit_code": rc,
        "replay_speed": a.speed, "audio_s": round(dur, 1), "ebr_db": a.ebr,
        "latency_from_onset_s": {"p50": pct(lat_total, 50), "p95": pct(lat_total, 95)},
        "latency_processing_s": {"p50": pct(lat_proc, 50), "p95": pct(lat_proc, 95)},
        "events": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in e.items()
                    if k not in ("start_ts", "end_ts")} for e in events],
    }


def _print_summary(s: dict) -> None:
    _say("\n=== streamad demo summary ===")
    _say(f"events inserted : {s['events_inserted']}")
    _say(f"events alerted  : {s['events_alerted']}")
    _say(f"false alerts    : {s['false_alerts']}  (over {s['audio_s']:.0f} s of audio)")
    lt, lp = s["latency_from_onset_s"], s["latency_processing_s"]
    _say(f"alert latency   : p50 {lt['p50']} s, p95 {lt['p95']} s from event onset published "
         f"(at {s['replay_speed']:g}x real time)")
    _say(f"daemon latency  : p50 {lp['p50']} s, p95 {lp['p95']} s from the window's last chunk published to alert")
    _say(f"windows scored  : {s['windows_scored']} of {s['windows_expected']}")
    _say(f"evidence        : {len(s['evidence_png'])} PNG, {len(s['evidence_wav'])} WAV"
         + (f" (e.g. {s['evidence_png'][0]})" if s['evidence_png'] else ""))
    _say(f"daemon exit code: {s['daemon_exit_code']}; wall time {s['wall_s']} s")
