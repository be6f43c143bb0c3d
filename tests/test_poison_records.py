"""Issue 9, item 1: no single record stops the daemon (real broker, real recordings).

Each of these records made the daemon of cf3559e exit 1, and exit 1 again on every restart (the
offset was never committed): a chunk stamped in the year 33658 (the alert's ISO time raised), a
header whose value is null (its dead-letter copy raised in the Kafka client), a header name that
is not UTF-8 (the client raised CorruptRecordError from poll), and a 20 MB chunk without a
timestamp (its dead-letter copy exceeded the producer's size limit). Now each one is
dead-lettered — as a placeholder (reason, source, original size and hash) when its copy cannot be
sent — the good stream around them keeps its offline scores, and a restart finds nothing to redo.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from streamad.io.codecs import encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests import robust_util as R
from tests.conftest import GLASS

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _offline(model_dir, sig):
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)  # int16 on the wire
    sc, _ = AnomalyModel.load(model_dir, device="cpu").score(frame_windows(wire, SR, SR // 2))
    return {f"mic@{int(TS0 * SR) + i * (SR // 2)}": float(s) for i, s in enumerate(sc)}


def test_poison_records_are_dead_lettered_and_the_daemon_goes_on(broker, tmp_path, unique, audio_model,
                                                                  heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    sig = load_audio(heldout_ambient[1], SR)
    glass = np.clip(load_audio(sorted(GLASS.glob("*.wav"))[0], SR)[: 3 * SR] * 4.0, -1, 1)
    hdr = [("sample_rate", b"16000"), ("dtype", b"int16"), ("channels", b"1")]
    huge = b"\0" * (20 * 1024 * 1024)
    poison = {  # chunk index of the good stream -> the record sent before it
        10: ("year-33658", encode_audio("far", glass, SR, 1e12)),
        20: ("null-header", (b"mic-null", b"\0\0", [("sample_rate", R.Null()), ("dtype", b"int16"),
                                                     ("channels", b"1"), ("timestamp", b"1800000000.0")])),
        30: ("bad-header-name", (b"mic-raw", b"\0\0", hdr + [("timestamp", b"1800000000.0"),
                                                              (R.RawName(b"\xff\xfe-trace"), b"x")])),
        40: ("20MB-no-timestamp", (b"huge", huge, hdr)),
    }
    records, sources = [], {}
    for j, i in enumerate(range(0, len(sig), SR // 10)):
        if j in poison:
            sources[len(records)] = poison[j][0]
            records.append(poison[j][1])
        records.append(encode_audio("mic", sig[i:i + SR // 10], SR, TS0 + i / SR))
    with R.null_header_values():  # each poison record in a batch of its own, as its own producer would send it
        prod, meta = R.fast_producer(broker.bootstrap), []
        cuts = sorted(set(sources) | {i + 1 for i in sources} | {len(records)})
        for a, b in zip([0] + cuts[:-1], cuts):
            meta += R.send_all(prod, topic, records[a:b], partition=0) if b > a else []
        prod.close()
    offsets = {sources[i]: meta[i].offset for i in sources}
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        want = _offline(audio_model, sig)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= set(want), proc=proc, log=log, timeout=180)
        K.wait_for(lambda: len(R.dead_letters(broker.bootstrap, f"{topic}-dlq", 0.5)) >= 4, proc=proc, log=log)
        assert K.stop(proc) == 0
        # a restart of the same group has nothing to redo: no crash loop, no dead letter sent twice
        proc = K.start_daemon(cfg, broker.bootstrap, tmp_path / "scores-2.jsonl", log)
        R.wait_line(log, "partitions assigned", proc=proc, count=2)
        import time
        time.sleep(3)
        assert proc.poll() is None and K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    for s in K.scored(slog):
        if s["stream_id"] == "mic":
            assert s["score"] == pytest.approx(want[s["key"]], rel=1e-3, abs=1e-3), s["key"]
    assert not K.scored(tmp_path / "scores-2.jsonl")
    dlq = R.dead_letters(broker.bootstrap, f"{topic}-dlq")
    by_src = {d["headers"]["dlq_source"].decode(): d for d in dlq}
    assert len(dlq) == 4 and set(by_src) == {f"{topic}/0/{o}" for o in offsets.values()}
    got = {name: by_src[f"{topic}/0/{off}"] for name, off in offsets.items()}
    for d in dlq:
        assert set(d["headers"]) >= {"dlq_reason", "dlq_source", "dlq_id"} and len(d["headers"]["dlq_id"]) == 20
    far = got["year-33658"]  # an ordinary copy, rejected at decode like readings' timestamps
    assert far["value"] == records[[i for i in sources if sources[i] == "year-33658"][0]][1]
    assert b"out of range (years 1900-9999)" in far["headers"]["dlq_reason"]
    null = got["null-header"]["headers"]  # the copy cannot be sent: a placeholder
    assert b"null value" in null["dlq_placeholder"] and null["dlq_original_size"] == b"2"
    assert null["dlq_original_sha256"].decode() == hashlib.sha256(b"\0\0").hexdigest()
    raw = got["bad-header-name"]["headers"]  # the client cannot decode it: skipped past, placeholder
    assert raw["dlq_reason"].startswith(b"unprocessable record") and raw["dlq_original_size"] == b"unknown"
    big = got["20MB-no-timestamp"]["headers"]
    assert b"exceeds worker.max_record_bytes" in big["dlq_reason"]
    assert big["dlq_original_size"] == str(len(huge)).encode()
    assert big["dlq_original_sha256"].decode() == hashlib.sha256(huge).hexdigest()
    assert R.stats_lines(log)[-1]["dead_letter_placeholders"] == 0  # the second run sent none
    print(f"\npoison: records sent {len(records)}, dead-lettered {len(dlq)} (placeholders 3), windows scored "
          f"{len(K.scored(slog))} of {len(want)}, duplicates 0, missing 0, re-done after a restart 0")
