"""Generated hostile input for both decoders through one daemon on the real broker (issue 9).

Over 10 000 hostile records (seeded numpy RNG: broken payloads, missing / garbage / null headers,
bad keys, non-finite and absurd samples, forged timestamps on both good streams, broken JSON and
readings, oversize records) are interleaved with a good audio stream (real
recordings) and a good sensor stream (real SKAB readings). Every hostile record is either
dead-lettered with exactly the reason the decoders give it offline (or the documented time rule's
reason) or accepted by a documented rule (a valid record of a new stream); nothing else is
dead-lettered; both good streams keep exactly their offline scores.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import yaml

from streamad.io.codecs import PayloadError, encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.io.readings import encode_readings
from streamad.kinds import kind_of
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests import robust_util as R
from tests.hostile import AudioHostile, SeriesHostile

SR = 16000
TS0 = 1_800_000_000.0
MAX_BYTES = 4 * 1024 * 1024  # worker.max_record_bytes (default)
pytestmark = pytest.mark.broker


@dataclass
class Rec:  # what the consumer hands the daemon
    key: Any
    value: Any
    headers: list


def _oracle(kind, model, key, value, headers, good, how):
    """The documented fate of a hostile record: ('dlq', reason, exact?) or ('accepted', '', True)."""
    if value is not None and len(value) > MAX_BYTES:
        return "dlq", f"record of {len(value)} bytes exceeds worker.max_record_bytes ({MAX_BYTES})", True
    hdrs = [(n, None if isinstance(v, R.Null) else v) for n, v in headers]
    try:
        payload = kind.decode(Rec(key, value, hdrs), model)
    except PayloadError as e:
        return "dlq", str(e), True
    if payload.stream_id == good:  # the time rule: a lone record off its stream, followed by one that continues
        return "dlq", "timestamp ", False
    return "accepted", "", True


def _configs(tmp_path, topics, group, audio_model, sensor_dir):
    kafka = {"group_id": group, "session_timeout_ms": 2000, "heartbeat_interval_ms": 600, "partitions": 1}
    worker = {}
    out = []
    for name, kind, model in (("audio", "audio", audio_model), ("sensor", "series", sensor_dir)):
        t = topics[name]
        d = {"kind": kind, "model": {"path": str(model)}, "worker": worker,
             "kafka": {**kafka, "input_topics": [t], "alert_topic": f"{t}-alerts", "dead_letter_topic": f"{t}-dlq"}}
        if kind == "series":
            d["series"] = {"rate_hz": 1.0, "window": 60, "hop": 1, "late_tolerance_s": 5.0}
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(d))
        out.append(p)
    return out


def _build(audio_model, sensor, heldout):
    """(records per topic, expectations, offline scores of the good streams)."""
    amodel = AnomalyModel.load(audio_model, device="cpu")
    smodel = AnomalyModel.load(sensor[0], device="cpu")
    sig = np.concatenate([load_audio(f, SR) for f in heldout[:2]])
    skab = sensor[1]
    vals = skab.values[400:700].astype(np.float32)
    ah, sh = AudioHostile(11, TS0), SeriesHostile(12, TS0, list(skab.channels))
    audio, series, expect = [], [], []
    for j, i in enumerate(range(0, len(sig), SR // 10)):
        forged = False
        for _ in range(30):
            k, v, h, how = ah.make(good_newest=TS0 + i / SR)
            while how == "forged-good" and (forged or j == 0):
                k, v, h, how = ah.make(good_newest=TS0 + i / SR)
            forged |= how == "forged-good"
            audio.append((k, v, h))
            expect.append(("audio", len(audio) - 1, how, _oracle(kind_of("audio"), amodel, k, v, h, "mic", "audio")))
        audio.append(encode_audio("mic", sig[i:i + SR // 10], SR, TS0 + i / SR))
    for i in range(len(vals)):
        forged = False
        for _ in range(14 if i >= 5 else 0):  # before each good reading: a forged one is always followed
            k, v, h, how = sh.make(good_newest=TS0 + i - 1)
            while how == "forged-good" and forged:  # one lone record between two good ones
                k, v, h, how = sh.make(good_newest=TS0 + i - 1)
            forged |= how == "forged-good"
            series.append((k, v, h))
            expect.append(("sensor", len(series) - 1, how,
                           _oracle(kind_of("series"), smodel, k, v, h, "pump", "series")))
        series.append(encode_readings("pump", [TS0 + i], vals[i:i + 1], list(skab.channels), batch=False))
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
    a_sc, _ = amodel.score(frame_windows(wire, SR, SR // 2))
    s_sc, _ = smodel.score(frame_windows(vals, 60, 1))
    offline = {f"mic@{int(TS0 * SR) + i * (SR // 2)}": float(s) for i, s in enumerate(a_sc)}
    offline.update({f"pump@{int(TS0) + i}": float(s) for i, s in enumerate(s_sc)})
    return {"audio": audio, "sensor": series}, expect, offline


def test_ten_thousand_hostile_records_for_both_decoders(broker, tmp_path, unique, audio_model, sensor_model,
                                                       heldout_ambient):
    topics = {"audio": f"fa-{unique}", "sensor": f"fs-{unique}"}
    ensure_topics(broker.bootstrap, [t + s for t in topics.values() for s in ("", "-alerts", "-dlq")], 1)
    records, expect, offline = _build(audio_model, sensor_model, heldout_ambient)
    n_hostile = len(expect)
    assert n_hostile >= 10_000
    with R.null_header_values():
        prod = R.fast_producer(broker.bootstrap)
        meta = {name: R.send_all(prod, topics[name], recs, partition=0) for name, recs in records.items()}
        prod.close()
    cfgs = _configs(tmp_path, topics, f"g-{unique}", audio_model, sensor_model[0])
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    args = [a for c in cfgs for a in ("--config", str(c))]
    proc = R.start_run(args + ["--bootstrap", broker.bootstrap, "--score-log", str(slog), "--device", "cpu"], log)
    want_dlq = sum(1 for e in expect if e[3][0] == "dlq")
    try:
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= set(offline), proc=proc, log=log, timeout=300)
        K.wait_for(lambda: sum(len(K.read_topic(broker.bootstrap, f"{t}-dlq", idle_s=0.5)) for t in topics.values())
                   >= want_dlq, proc=proc, log=log, timeout=120, every=2)
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    dlq = {name: {} for name in topics}
    for name, t in topics.items():
        for d in R.dead_letters(broker.bootstrap, f"{t}-dlq"):
            dlq[name].setdefault(d["headers"]["dlq_source"].decode(), []).append(d)
    wrong = []
    for name, idx, how, (fate, reason, exact) in expect:
        src = f"{topics[name]}/0/{meta[name][idx].offset}"
        got = dlq[name].pop(src, [])
        if fate == "accepted" and not got:
            continue
        ok = len(got) == 1 and (got[0]["headers"]["dlq_reason"].decode() == reason if exact else
                                got[0]["headers"]["dlq_reason"].decode().startswith(reason))
        if not ok:
            wrong.append((name, how, reason, [g["headers"]["dlq_reason"] for g in got]))
    assert wrong == [], wrong[:10]
    assert dlq == {name: {} for name in topics}  # nothing else was dead-lettered (no good record)
    scored = K.scored(slog)
    for s in scored:
        if s["key"] in offline:
            assert s["score"] == pytest.approx(offline[s["key"]], rel=1e-3, abs=1e-3), s["key"]
    good = [s["key"] for s in scored if s["key"] in offline]
    assert len(good) == len(set(good)) == len(offline)  # every good window once, none missing
    last = R.stats_lines(log)[-1]
    fates = Counter(e[3][0] for e in expect)
    print(f"\nfuzz: records sent {len(records['audio']) + len(records['sensor'])}, "
          f"hostile {n_hostile} (dead-lettered {fates['dlq']}, accepted {fates['accepted']}; "
          f"kinds {dict(Counter(e[2] for e in expect))}), windows scored {last['windows']} "
          f"(good {len(good)}), duplicates {last['duplicates']}, missing 0, placeholders "
          f"{last['dead_letter_placeholders']}")
