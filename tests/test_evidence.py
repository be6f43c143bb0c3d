"""Alert evidence (PNG + WAV), event-closed records, `streamad alerts`, and per-stream drift (issue 11)."""
from __future__ import annotations

import subprocess
import sys
import wave
from collections import namedtuple

import numpy as np
import pytest
import yaml

from streamad.config import from_dict
from streamad.daemon.drift import Drift
from streamad.daemon.pipeline import Pipeline
from streamad.io.codecs import encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from tests import kafka_util as K
from tests.conftest import DATA, GLASS

SR = 16000
TS0 = 1_800_000_000.0


@pytest.mark.broker
def test_alert_writes_png_and_wav_and_the_tail_shows_it(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    d = yaml.safe_load(cfg.read_text())
    d["alerts"] = {"evidence_dir": str(tmp_path / "evidence"), "evidence_pre_s": 1.0, "evidence_post_s": 1.0}
    cfg.write_text(yaml.safe_dump(d))
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    amb = load_audio(heldout_ambient[0], SR)
    sig, (a, b) = K.event_signal(amb, load_audio(sorted(GLASS.glob("*.wav"))[0], SR), SR, 4.0, 6.0)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.produce_audio(broker.bootstrap, topic, "lobby", sig, SR, TS0)
        keys = K.expected_keys("lobby", len(sig), SR, TS0, SR, SR // 2)
        K.stop_when_scored(proc, slog, log, keys)
    finally:
        if proc.poll() is None:
            proc.kill()
    alerts = K.alert_records(broker.bootstrap, f"{topic}-alerts")
    closed = {c["alert_id"]: c for c in K.alert_records(broker.bootstrap, f"{topic}-alerts", "event_closed")}
    hit = [al for al in alerts if al["window_start"] < TS0 + b and al["window_end"] > TS0 + a]
    assert hit, "the glass break raised no alert"
    al = hit[0]
    png = al["evidence"]["png"]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and png.endswith(f"lobby/{al['alert_id']}.png")
    c = closed[al["alert_id"]]
    assert c["evidence"] == al["evidence"]
    with wave.open(al["evidence"]["wav"]) as w:  # the event, 1 s before to 1 s after
        assert w.getframerate() == SR and w.getnchannels() == 1
        dur = w.getnframes() / SR
    assert dur == pytest.approx(c["duration_s"] + 2.0, abs=0.11)
    r = subprocess.run([sys.executable, "-m", "streamad.cli", "alerts", "--bootstrap", broker.bootstrap, "--topic",
                        f"{topic}-alerts", "--from-beginning", "--max-seconds", "4"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("time (UTC)")
    assert any("lobby" in ln and "ALERT" in ln and png in ln for ln in lines)
    assert any("lobby" in ln and "closed" in ln and f"{c['duration_s']:.1f} s" in ln for ln in lines)


def test_drift_half_life_and_offset():
    d = Drift(halflife_s=10.0)
    d.update(0.0, 0.0)
    d.update(10.0, 4.0)  # one half-life later: half way
    assert d.mean == pytest.approx(2.0)
    assert d.drift(0.5) == pytest.approx(1.5)
    assert d.offset(0.5, warmup_s=20.0, max_offset=10.0) == 0.0  # still warming up
    d.update(30.0, 4.0)
    assert d.offset(0.5, warmup_s=20.0, max_offset=10.0) == pytest.approx(4.0 - 2.0 * 0.25 - 0.5)
    assert d.offset(0.5, warmup_s=20.0, max_offset=1.0) == 1.0
    assert Drift(10.0).drift(0.0) is None


def test_noisier_room_is_noticed_and_adapt_threshold_stops_the_flood(audio_model, heldout_ambient):
    """A microphone of the quiet site moves into a restaurant: its drift shows it, and with
    alerts.adapt_threshold its alerts stop, without it they keep coming."""
    model = AnomalyModel.load(audio_model, "cpu")
    quiet = np.concatenate([load_audio(f, SR) for f in heldout_ambient[:6]])
    cafe = load_audio(DATA / "audio" / "scenes" / "moodist" / "moodist_places_restaurant.ogg", SR)[:90 * SR]
    sig = np.concatenate([quiet, cafe])
    Rec = namedtuple("Rec", "key value headers offset")
    results = {}
    for adapt in (False, True):
        cfg = from_dict({"alerts": {"adapt_threshold": adapt, "adapt_warmup_s": 10.0, "drift_halflife_s": 15.0}})
        p, records = Pipeline("mic.yaml", cfg, model), []
        for j, i in enumerate(range(0, len(sig), 1600)):
            items, _ = p.accept(Rec(*encode_audio("mic", sig[i:i + 1600], SR, TS0 + i / SR)[:3], j), ("t", 0))
            if items:
                records += p.decide(items, *p.score([w for _, w in items]))
        results[adapt] = ([r for r in records if r["type"] == "alert"], p.drifts()["mic"],
                          p.streams[(("t", 0), "mic")].rule.offset)
    (plain, drift, no_offset), (adapted, _, offset) = results[False], results[True]
    assert drift > 3.0  # noticed: the stream's normal scores sit far above the calibration's
    assert all(a["window_start"] >= TS0 + len(quiet) / SR - 1 for a in plain)  # none in the quiet part
    assert len(plain) >= 3 and len(adapted) <= len(plain) // 2
    assert no_offset == 0.0 and offset > 3.0  # the stream's threshold was raised, only when asked to
