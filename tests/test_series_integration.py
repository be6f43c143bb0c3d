"""Sensor, ECG and audio streams through one daemon process on the real broker (issue 4)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from streamad.config import KafkaConfig, load
from streamad.io import kafka as kio
from streamad.io.files import load_audio
from streamad.io.replay import replay_series
from streamad.io.seriesfiles import SeriesData, load_series_files
from streamad.train import Recording, train_model
from tests import kafka_util as K
from tests.conftest import DATA, GLASS, ROOT

pytestmark = pytest.mark.broker
SKAB = DATA / "series" / "skab" / "data" / "valve1" / "0.csv"
MITBIH = DATA / "ecg" / "mitbih" / "100.hea"
ECG_T0 = 1_800_000_000.0


def _slice(d: SeriesData, a: int, b: int, shift: float = 0.0) -> SeriesData:
    return SeriesData(d.name, d.values[a:b], d.times[a:b] + shift, d.time_labels[a:b] if not shift else
                      [repr(float(t)) for t in d.times[a:b] + shift], d.channels,
                      None if d.labels is None else d.labels[a:b], d.rate_hz)


@pytest.fixture(scope="module")
def series_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("series-models")
    # sensor: SKAB protocol, the first 400 readings of the file are the normal training data
    skab = load_series_files([SKAB], time_column="datetime", label_column="anomaly")[0]
    cfg_s = load(ROOT / "configs" / "sensor.yaml")
    cfg_s.model.params["steps"] = 150
    cfg_s.train.threads = 1
    train_model(cfg_s, [Recording("skab-prefix", skab.values[:400], skab.channels)], out / "sensor",
                show_progress=False)
    # ECG: record 100 from 480 s to 770 s holds no abnormal beat
    ecg = load_series_files([MITBIH])[0]
    cfg_h = load(ROOT / "configs" / "heartrate.yaml")
    cfg_h.train.threads = 1
    train_model(cfg_h, [Recording("100-normal", ecg.values[480 * 360:770 * 360], ecg.channels)], out / "heartrate",
                show_progress=False)
    return out, skab, ecg


def _cfg(path, base, topic, group, model):
    d = load(base).to_dict()
    d["kafka"].update(input_topics=[topic], alert_topic=f"{topic}-alerts", dead_letter_topic=f"{topic}-dlq",
                      group_id=group, session_timeout_ms=2000, heartbeat_interval_ms=600, partitions=2)
    d["model"]["path"] = str(model)
    path.write_text(yaml.safe_dump(d))
    return path


def test_sensor_ecg_and_audio_streams_in_one_daemon(broker, tmp_path, unique, series_models, audio_model,
                                                    heldout_ambient):
    models, skab, ecg = series_models
    group = f"g-{unique}"
    topics = {k: f"{k}-{unique}" for k in ("audio", "sensor", "heartrate")}
    cfgs = [_cfg(tmp_path / "audio.yaml", ROOT / "configs" / "audio.yaml", topics["audio"], group, audio_model),
            _cfg(tmp_path / "sensor.yaml", ROOT / "configs" / "sensor.yaml", topics["sensor"], group, models / "sensor"),
            _cfg(tmp_path / "hr.yaml", ROOT / "configs" / "heartrate.yaml", topics["heartrate"], group,
                 models / "heartrate")]
    kio.ensure_topics(broker.bootstrap, [t + s for t in topics.values() for s in ("", "-alerts", "-dlq")], 2)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "streamad.cli", "run", "--bootstrap", broker.bootstrap, "--score-log", str(slog),
            "--device", "cpu"]
    for c in cfgs:
        args += ["--config", str(c)]
    proc = subprocess.Popen(args, stderr=open(log, "ab"), stdout=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        # audio: a glass break 4 s into a held-out ambient recording
        amb = load_audio(heldout_ambient[1], 16000)
        mixed, (a0, a1) = K.event_signal(amb, load_audio(sorted(GLASS.glob("*.wav"))[0], 16000), 16000, 4.0, 6.0)
        K.produce_audio(broker.bootstrap, topics["audio"], "lobby", mixed, 16000, 1_800_000_000.0)
        prod = kio.producer(KafkaConfig(), broker.bootstrap)
        # a malformed reading first: it must land on the sensor dead-letter topic, the rest goes on
        prod.send(topics["sensor"], key=b"pump-7", value=b'{"ts": "soon", "values": {"Pressure": 1}}',
                  headers=[("trace-id", b"s-1")]).get(timeout=10)
        # sensor: the whole SKAB file, one reading per record, original timestamps
        replay_series(prod, topics["sensor"], "pump-7", skab, speed=0, batch=1)
        # ECG: 840-900 s of record 100 (5 abnormal beats), in 0.5 s batches, on an epoch clock
        seg = _slice(ecg, 840 * 360, 900 * 360, shift=ECG_T0)
        replay_series(prod, topics["heartrate"], "bed-3", seg, speed=0, batch=180)
        prod.close()
        last = [-1, time.time()]

        def settled():
            n = len(K.scored(slog))
            if n != last[0]:
                last[:] = [n, time.time()]
            streams = {s["stream_id"] for s in K.scored(slog)}
            return streams >= {"lobby", "pump-7", "bed-3"} and time.time() - last[1] > 4

        K.wait_for(settled, timeout=180, proc=proc, log=log)
        assert K.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    alerts = {k: K.alert_records(broker.bootstrap, f"{t}-alerts") for k, t in topics.items()}
    ts0 = 1_800_000_000.0
    assert any(al["window_start"] < ts0 + a1 and al["window_end"] > ts0 + a0 for al in alerts["audio"])
    # sensor alerts inside the labelled valve anomaly, quoting the input's timestamps
    lab = skab.labels.astype(bool)
    an_start, an_end = skab.times[lab].min(), skab.times[lab].max()
    s_alerts = alerts["sensor"]
    assert s_alerts, "no sensor alert"
    # one alert per event: the event that covers the anomaly opened at or before its end ...
    assert any(al["window_start"] <= an_end for al in s_alerts)
    assert all(al["start_label"].startswith("2020-03-09") for al in s_alerts)
    # ... and the windows inside the labelled anomaly keep it open (score over the threshold)
    thr = s_alerts[0]["threshold"]
    inside = [w["score"] for w in K.scored(slog) if w["stream_id"] == "pump-7"
              and w["start"] >= an_start and w["end"] <= an_end]
    assert inside and np.mean(np.array(inside) > thr) > 0.8
    # ECG alerts at abnormal beats (a beat is covered by a window that contains it)
    ab = ts0 + ecg.beats[(ecg.beat_labels == 1)] / 360.0
    ab = ab[(ab > ts0 + 840) & (ab < ts0 + 900)]
    h_alerts = alerts["heartrate"]
    hits = [t for t in ab if any(al["window_start"] <= t <= al["window_end"] for al in h_alerts)]
    assert hits, f"no ECG alert at the abnormal beats {np.round(ab - ts0, 1)}; alerts at " \
                 f"{[round(al['window_start'] - ts0, 1) for al in h_alerts]}"
    scored = K.scored(slog)
    assert {s["stream_id"] for s in scored} == {"lobby", "pump-7", "bed-3"}
    # the series dead-letter topic holds exactly the malformed reading, unchanged, with reason and source
    (dl,) = K.read_topic(broker.bootstrap, f"{topics['sensor']}-dlq")
    (src,) = [r for r in K.read_topic(broker.bootstrap, topics["sensor"]) if r.value == dl.value]
    assert dl.key == b"pump-7" and dl.headers[0] == ("trace-id", b"s-1")
    h = dict(dl.headers)
    assert "bad timestamp 'soon'" in h["dlq_reason"].decode()
    assert h["dlq_source"].decode() == f"{topics['sensor']}/{src.partition}/{src.offset}"
    assert K.read_topic(broker.bootstrap, f"{topics['heartrate']}-dlq", idle_s=0.5) == []
