"""``streamad bench``: its arithmetic, its report, and one tiny run on the real broker (correctness
of the outputs only: timings are never asserted)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from streamad.benchmarks import bench_report as R
from streamad.benchmarks.bench_env import alert_threshold
from streamad.benchmarks.bench_live import latency_stats, summarize, verdict
from tests.conftest import AMBIENT


def test_alert_threshold_opens_the_asked_fraction():
    rng = np.random.default_rng(0)
    scores = np.convolve(rng.standard_normal(5000), np.ones(3) / 3, mode="same")  # clustered like audio
    thr = alert_threshold(scores, 0.02)
    trig = scores > thr
    opens = trig & ~np.concatenate([[False], trig[:-1]])
    assert opens.mean() == pytest.approx(0.02, abs=0.004)


def test_summaries_latency_and_verdict():
    rows = [(0.0, 0, 0, 0.0, 400.0), (1.0, 10, 0, 0.5, 410.0), (2.0, 50, 100, 1.5, 420.0),
            (3.0, 90, 900, 2.5, 430.0), (4.0, 100, 1000, 3.5, 425.0)]
    b = R.backlog_summary(rows, 1000, 1, 0)
    assert b["drain_s"] == 3.0 and b["windows_per_s"] == pytest.approx(333.3, abs=0.1)
    assert b["rss_mb_max"] == 430.0 and b["daemon_cpu_pct"] == 100.0
    assert R.backlog_summary(rows[:3], 1000, 1, 0)["windows_per_s"] is None  # never finished
    fast = [(0.0, 0, 0, 0.0, 400.0), (0.1, 100, 1000, 0.1, 410.0)]  # all of it between two samples
    f = R.backlog_summary(fast, 1000, 1, 0)
    assert f["drain_s"] == 0.1 and f["windows_per_s"] == pytest.approx(10000.0) and "lower bound" in f["note"]
    assert R.backlog_summary(fast[1:], 1000, 1, 0)["windows_per_s"] is None
    alerts = [(10.3, 10.0), (11.1, 11.0), (20.0, 19.0), (99.0, 5.0)]  # (received, window end)
    lat = latency_stats(alerts, 9.0, 30.0)
    assert lat["alerts"] == 3 and lat["p50_s"] == 0.3 and lat["max_s"] == 1.0
    live_rows = [{"t": t, "windows": 20.0 * t, "records": 100.0 * t, "lag": 0, "queue": 1, "paused": 0,
                  "cpu_s": 0.5 * t, "rss_mb": 400.0, "others_cpu_s": 0.1 * t} for t in range(10)]
    s = summarize(live_rows, 2, 8)
    assert s["windows_per_s"] == 20.0 and s["daemon_cpu_pct"] == 50.0 and s["lag_end"] == 0
    assert s["broker_producers_cpu_pct"] == 10.0 and "broker_cpu_pct" not in s  # no broker of its own
    split = summarize([{**r, "broker_cpu_s": 0.04 * r["t"]} for r in live_rows], 2, 8)
    assert split["broker_cpu_pct"] == 4.0 and split["broker_producers_cpu_pct"] == 10.0
    ok = {"streams": 10, "windows_due_per_s": 20.0, "records_due_per_s": 100, "latency": lat, **s,
          "producer_late_p99_s": 0.01}
    assert verdict(ok)[0]
    assert not verdict({**ok, "windows_per_s": 15.0})[0]
    assert not verdict({**ok, "lag_end": 500})[0]
    assert "out of CPU" in verdict({**ok, "producer_late_p99_s": 1.0})[1]


def _fake_results() -> dict:
    live = [{"streams": n, "windows_due_per_s": 2.0 * n, "windows_per_s": 2.0 * n, "lag_max": n, "lag_end": 0,
             "daemon_cpu_pct": 10.0, "rss_mb_start": 400.0, "rss_mb_end": 401.0, "broker_producers_cpu_pct": 5.0,
             "latency": {"alerts": 5, "p50_s": 0.1, "p95_s": 0.2, "p99_s": 0.3, "max_s": 0.4},
             "lag_series": [[0.0, 0], [1.0, n]], "keeps_up": True, "verdict": "keeps up"} for n in (10, 100)]
    return {"box": {"cpus": 2}, "model": {"alert_fraction_target": 0.02}, "settings": {"chunk_s": 0.1},
            "naive": {"windows_per_s": 50.0, "live_streams": 25, "rss_mb_max": 500.0},
            "model_only": {"windows_per_s": 2000.0, "batch": 256},
            "backlog": [{"processes": 1, "windows": 1000, "windows_per_s": 1500.0, "live_streams_equivalent": 750},
                        {"processes": 2, "windows": 1000, "windows_per_s": 2100.0, "live_streams_equivalent": 1050}],
            "live": live}


def test_report_files_and_docs_block(tmp_path):
    res = _fake_results()
    docs = tmp_path / "PERF.md"
    docs.write_text(f"# Performance\n\nhand-written\n\n{R.BEGIN}\nold\n{R.END}\n\nafter\n")
    R.write_all(res, tmp_path, docs)
    got = json.loads((tmp_path / "performance.json").read_text())
    assert got["ratios"] == {"backlog_vs_naive": 30.0, "live_capacity_streams": 100,
                             "live_capacity_vs_naive_streams": 4.0, "backlog_2_vs_1_process": 1.4}
    assert (tmp_path / "performance.png").stat().st_size > 1000
    text = docs.read_text()
    assert "hand-written" in text and "after" in text and "\nold\n" not in text
    assert "| 100 | 200 → 200 | 5 | 0.100 / 0.200 / 0.300 / 0.400 |" in text
    res["live"][1]["broker_cpu_pct"] = 3.0
    assert "| 5 (broker 3) | keeps up |" in R.markdown(res)


def test_gpu_settings_model_rows_per_batch_and_bad_batches():
    """``--device cuda`` gives the daemon larger batches and queue unless set; the model phase's rows
    (one per ``--model-batches`` size) each appear, marked with their device; bad sizes are one line."""
    import argparse

    from streamad.benchmarks.bench import _defaults, add_arguments
    from streamad.benchmarks.bench_env import daemon_worker
    from streamad.config import ConfigError

    p = argparse.ArgumentParser()
    add_arguments(p)
    cpu, gpu = p.parse_args([]), p.parse_args(["--device", "cuda:0", "--queue-windows", "500"])
    assert daemon_worker(cpu) == {} and daemon_worker(gpu) == {"max_batch": 4096, "queue_windows": 500}
    a = p.parse_args(["--model-batches", "256,4096"])
    _defaults(a)
    assert a.model_batches == (256, 4096)
    for bad in ("256,x", "0"):
        with pytest.raises(ConfigError, match="^bench --model-batches: "):
            _defaults(p.parse_args(["--model-batches", bad]))
    res = _fake_results()
    rows = [{"windows_per_s": 40000.0, "batch": b, "device": "cuda:0"} for b in (256, 4096)]
    res["model_only"] = {**rows[0], "by_batch": rows}
    text = R.markdown(res)
    assert "| model only (1 thread, cuda:0, batch 256, no Kafka) | 40 000 | 20 000 | — | — |" in text
    assert "cuda:0, batch 4096" in text and "batch 256, no Kafka) | 2 000" not in text


def test_gpu_check_compares_devices_and_counts_scores_that_are_not_finite(tmp_path, audio_model):
    """``python -m streamad.benchmarks.gpu_check`` on the CPU alone (the smoke test CI can run): the
    same model on the same device agrees exactly; a NaN score is counted, not hidden (NaN is never
    over a threshold, so the decisions alone would look equal)."""
    from streamad.benchmarks import gpu_check

    ref = (np.array([0.0, 1.0, 2.0, 3.0]), {"nll": np.array([0.0, 1.0, 2.0, 3.0])})
    bad = (np.array([0.0, 1.0, np.nan, 3.0]), {"nll": np.array([0.0, 1.0, np.nan, 3.0])})
    ag = gpu_check.agreement(ref, bad, 2.5)
    assert ag["nonfinite"] == 1 and ag["decisions_differ"] == 0 and ag["alerts_ref"] == 1
    out = tmp_path / "gc"
    assert gpu_check.main(["--out", str(out), "--device", "cpu", "--models", "default", "--model",
                           f"default={audio_model}", "--data", str(AMBIENT), "--seconds", "0.2",
                           "--windows", "40"]) == 0
    got = json.loads((out / "gpu_check.json").read_text())["models"]["default"]
    assert got["agreement"]["float32"]["windows"] >= 40
    assert got["agreement"]["float32"]["max_abs_diff"] == 0.0 and got["agreement"]["float32"]["nonfinite"] == 0
    assert got["speed"][0]["device"] == "cpu" and got["speed"][0]["windows_per_s"] > 0


def test_docs_block_keeps_the_sweep_for_a_soak_and_the_soak_for_a_sweep(tmp_path):
    docs = tmp_path / "PERF.md"
    docs.write_text(f"top\n\n{R.BEGIN}\n{R.END}\n\nbottom\n")
    for d in ("sweep", "soak", "sweep2"):
        (tmp_path / d).mkdir()
    R.write_all(_fake_results(), tmp_path / "sweep", docs)
    soak = {"streams": 4, "minutes": 1.0, "rss_change_pct": 3.0,
            "start": {"span": "s", "latency": {"alerts": 1}, "rss_mb": 100.0, "lag_max": 0}}
    R.write_all({"soak": soak}, tmp_path / "soak", docs)  # a fresh --out: no sweep of its own
    text = docs.read_text()
    assert "| 100 | 200 → 200 | 5 |" in text and "RSS end vs start: +3.0 %." in text
    assert text.index("| 100 | 200 → 200") < text.index(R.SOAK) < text.index("RSS end vs start")
    assert text.startswith("top\n") and text.endswith("bottom\n")
    res = _fake_results()
    res["live"][1]["streams"] = 7
    R.write_all(res, tmp_path / "sweep2", docs)  # a new sweep keeps the soak, replaces the sweep
    text = docs.read_text()
    assert "| 7 | 200 → 200" in text and "| 100 | 200 → 200" not in text and "RSS end vs start: +3.0 %." in text
    assert text.count(R.SOAK) == 1 and text.count(R.BEGIN) == 1 and text.count(R.END) == 1


def test_soak_alone_reports_its_own_run_and_the_rss_after_warm_up(tmp_path):
    soak = {"command": "streamad bench --soak 30 --soak-streams 4", "box": {"cpus": 2, "cpu_model": "x86", "torch": "2.13.0",
                                                                     "loadavg": [1, 1, 1], "loadavg_end": [2, 2, 2]},
            "started": "A", "finished": "B", "model": {"detector": "gmgan", "model_version": "gmgan-x",
                                                      "alert_fraction_target": 0.02},
            "streams": 4, "minutes": 30.0, "daemon_exit": 0, "rebalances": 1, "input_topic_recycles_skipped": 2,
            "producer_late_p99_s": 0.01, "producer_late_max_s": 0.02, "rss_change_pct": 10.0,
            "rss_series": [[0.5, 100.0], [4.0, 150.0], [5.0, 200.0], [30.0, 210.0]],
            "start": {"span": "0.2-2.2 min", "latency": {"alerts": 3, "p50_s": 0.1, "p95_s": 0.2, "p99_s": 0.3},
                      "rss_mb": 100.0, "lag_max": 0}}
    R.write_all({"soak": soak}, tmp_path)
    md = (tmp_path / "performance.md").read_text()
    assert "None" not in md and "streamad bench --soak 30 --soak-streams 4" in md
    assert "RSS after the first 5 minutes: 200 → 210 MB (+5.0 %); peak 210 MB." in md
    assert "| start (0.2-2.2 min) | 4 | 30.0 | 3 | 0.100 / 0.200 / 0.300 | 100 | 0 |" in md
    assert "Input topics not read to their end when their turn to be emptied came: 2 " in md


@pytest.mark.broker
def test_tiny_bench_run_writes_every_result(broker, tmp_path, audio_model):
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "streamad.cli", "bench", "--bootstrap", broker.bootstrap, "--out", str(out),
           "--data", str(AMBIENT), "--model", str(audio_model), "--phases", "naive,backlog,live",
           "--backlog-streams", "4", "--backlog-seconds", "6", "--processes", "1", "--naive-seconds", "2",
           "--streams", "6", "--live-seconds", "8", "--warmup-s", "2", "--partitions", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        _stdout, stderr = p.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the benchmark and every process it started
        _stdout, stderr = p.communicate()
        pytest.fail("bench did not finish within 400 s:\n" + stderr[-3000:])
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, stderr[-3000:]
    res = json.loads((out / "performance.json").read_text())
    assert res["naive"]["windows"] > 0
    (b,) = res["backlog"]
    assert b["windows"] == 4 * 11 and b["windows_per_s"] > 0 and b["daemon_exit"] == 0
    (live,) = res["live"]
    assert live["streams"] == 6 and live["daemon_exit"] == 0 and live["lag_series"]
    assert {"p50_s", "p95_s", "p99_s"} <= set(live["latency"])
    assert (out / "performance.md").read_text().count("|") > 20 and (out / "performance.png").exists()
    assert "[bench" in stderr  # progress on long runs


@pytest.mark.broker
def test_tiny_soak_reports_start_end_and_progress(broker, tmp_path, audio_model):
    out = tmp_path / "soak"
    cmd = [sys.executable, "-m", "streamad.cli", "bench", "--bootstrap", broker.bootstrap, "--out", str(out),
           "--data", str(AMBIENT), "--model", str(audio_model), "--soak", "0.5", "--soak-streams", "3",
           "--soak-rotate-s", "10", "--warmup-s", "2", "--partitions", "2", "--alert-fraction", "0.2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        _stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, stderr[-3000:]
    res = json.loads((out / "soak.json").read_text())
    assert res["daemon_exit"] == 0 and res["streams"] == 3 and res["command"].startswith("streamad bench")
    assert res["all"]["windows_per_s"] > 0 and res["all"]["latency"]["alerts"] > 0
    assert len(res["rss_series"]) >= 3 and res["rss_change_pct"] is not None
    assert res["input_topic_recycles_skipped"] == 0  # three segments: the first is emptied once read
    md = (out / "performance.md").read_text()
    assert "RSS end vs start" in md and "None" not in md
    assert stderr.count("soak ") >= 1  # progress while it runs


@pytest.mark.broker
def test_soak_empties_a_ring_topic_only_once_the_daemon_has_read_it(broker, unique, tmp_path):
    """The soak's ring: a topic whose consumer lag is not 0 (or not known) keeps its records; once
    read it is emptied (deleted and created again with its partitions) for the next segment."""
    from streamad.benchmarks import bench_soak
    from streamad.benchmarks.bench import topic_census
    from streamad.benchmarks.bench_live import Ctx
    from streamad.io import kafka as kio
    from tests.kafka_util import produce_audio

    topic = f"ring-{unique}"
    kio.ensure_topics(broker.bootstrap, [topic], 2)
    assert produce_audio(broker.bootstrap, topic, "a", np.zeros(16000, dtype=np.float32), 16000, 1000.0) == 10
    lag: dict = {"v": 4.0}

    class Daemon:  # the daemon's /metrics answer, as DaemonRun.topic_lag gives it
        def topic_lag(self, name):
            assert name == topic
            if lag["v"] == "down":
                raise OSError("metrics did not answer")
            return lag["v"]

    ctx = Ctx(broker.bootstrap, tmp_path, tmp_path / "corpus.npy", tmp_path, True, partitions=2, say=lambda m: None)
    for v in (4.0, None, "down"):
        lag["v"] = v
        assert bench_soak._recycle_if_read(ctx, Daemon(), topic, 2) is False
    assert topic_census(broker.bootstrap, topic, idle_s=1.5)["records"] == 10  # nothing deleted unread
    lag["v"] = 0.0
    assert bench_soak._recycle_if_read(ctx, Daemon(), topic, 2) is True
    assert topic_census(broker.bootstrap, topic, idle_s=1.5)["records"] == 0
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert c.partitions_for_topic(topic) == {0, 1}
    finally:
        c.close()


def test_the_soak_defaults_to_fewer_alerts_and_shorter_topics_than_a_sweep():
    """The soak's alert fraction and topic period default to what keeps the embedded broker's partitions
    small; a given fraction wins in both; a fraction outside (0, 1) is a one-line error."""
    import argparse

    from streamad.benchmarks import bench
    from streamad.config import ConfigError

    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    sweep, soak = p.parse_args([]), p.parse_args(["--soak", "30", "--soak-streams", "600"])
    bench._defaults(sweep)
    bench._defaults(soak)
    assert sweep.alert_fraction == bench.ALERT_FRACTION and soak.alert_fraction == bench.SOAK_ALERT_FRACTION
    assert bench.SOAK_ALERT_FRACTION < bench.ALERT_FRACTION and soak.soak_rotate_s == bench.SOAK_ROTATE_S == 20.0
    given = p.parse_args(["--soak", "30", "--alert-fraction", "0.05"])
    bench._defaults(given)
    assert given.alert_fraction == 0.05
    for bad in ("0", "1", "-0.1"):
        with pytest.raises(ConfigError, match="^bench --alert-fraction: "):
            bench._defaults(p.parse_args(["--alert-fraction", bad]))


def test_naive_loop_always_runs_a_gmgan(tmp_path, monkeypatch):
    from streamad.benchmarks import bench_env

    g, f = tmp_path / "g", tmp_path / "f"
    for d, det in ((g, "gmgan"), (f, "frame_fullgmm")):
        d.mkdir()
        (d / "model.json").write_text(json.dumps({"detector": det}))
    trained = []
    monkeypatch.setattr(bench_env, "base_model", lambda out, data, det="gmgan": trained.append(det) or tmp_path / "t")
    assert bench_env.naive_model(tmp_path, tmp_path, g) == g and trained == []  # the benchmark model itself
    assert bench_env.naive_model(tmp_path, tmp_path, f) == tmp_path / "t" and trained == ["gmgan"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="--detector"):
        bench_env.base_model(tmp_path, tmp_path, "pca")


@pytest.mark.broker
def test_topic_census_counts_what_the_broker_holds_and_a_producers_resends(broker, unique):
    """A backlog that stalls short is told apart from one that never fully reached the broker: the
    census counts records and distinct chunks (a producer's retry stores a chunk twice)."""
    from streamad.benchmarks.bench import topic_census
    from streamad.io import kafka as kio
    from tests.kafka_util import produce_audio

    topic = f"census-{unique}"
    kio.ensure_topics(broker.bootstrap, [topic], 2)
    sig = np.zeros(16000, dtype=np.float32)
    assert produce_audio(broker.bootstrap, topic, "a", sig, 16000, 1000.0) == 10
    assert produce_audio(broker.bootstrap, topic, "b", sig[:4800], 16000, 1000.0) == 3
    produce_audio(broker.bootstrap, topic, "a", sig[:3200], 16000, 1000.0)  # "a"'s first two chunks again
    produce_audio(broker.bootstrap, topic, "c", sig, 16000, 1000.0)
    produce_audio(broker.bootstrap, topic, "c", sig, 16000, 1001.5)  # after a 0.5 s gap: a second segment
    c = topic_census(broker.bootstrap, topic, idle_s=1.5)
    # windows: "a" 1 (1 s), "b" none (0.3 s), "c" one per segment; the resent chunks make none
    offsets = c.pop("offsets")
    assert c == {"records": 35, "chunks": 33, "duplicate_records": 2, "partitions": 2, "streams": 3, "gaps": 1,
                 "windows": 3}
    assert sorted(offsets) == [0, 1] and sum(o["served"] for o in offsets.values()) == 35
    # offsets served from 0 without a jump; the broker's own end offset is reported beside them (the
    # embedded broker answers one past the base offset of a partition's last batch, not past its last record)
    assert all(o["next"] == o["served"] and o["jumps"] == 0 and o["end"] is not None for o in offsets.values())
