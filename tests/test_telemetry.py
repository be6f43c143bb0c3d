"""Telemetry: private registry, counters that move, bounded labels, the exported names."""
from __future__ import annotations

import random
import string

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamad.daemon import telemetry as T


def samples(tel: T.Telemetry) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} as Prometheus would scrape it."""
    out = {}
    for fam in text_string_to_metric_families(generate_latest(tel.registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(tel: T.Telemetry, metric: str, **labels) -> float:
    return samples(tel).get((metric, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def tel() -> T.Telemetry:
    t = T.Telemetry(version="9.9.9")
    t.add_pipeline("audio", ["audio", "audio2"], "gmgan", "gmgan-abc", 6.5)
    return t


def test_counters_move(tel):
    tel.records("audio", "audio", 3)
    tel.records("audio", "audio2")
    tel.windows_scored("audio", 8, 0.02)
    tel.windows_scored("audio", 2, 0.5)
    tel.alert("audio", 1.2)
    tel.commit()
    assert value(tel, "streamad_records_total", pipeline="audio", topic="audio") == 3
    assert value(tel, "streamad_records_total", pipeline="audio", topic="audio2") == 1
    assert value(tel, "streamad_windows_scored_total", pipeline="audio") == 10
    assert value(tel, "streamad_score_seconds_count", pipeline="audio") == 2
    assert value(tel, "streamad_score_seconds_sum", pipeline="audio") == pytest.approx(0.52)
    assert value(tel, "streamad_score_seconds_bucket", pipeline="audio", le="0.025") == 1
    assert value(tel, "streamad_alerts_total", pipeline="audio") == 1
    assert value(tel, "streamad_alert_latency_seconds_bucket", pipeline="audio", le="1.0") == 0
    assert value(tel, "streamad_alert_latency_seconds_bucket", pipeline="audio", le="2.0") == 1
    assert value(tel, "streamad_commits_total") == 1
    assert value(tel, "streamad_build_info", version="9.9.9") == 1


def test_series_exist_from_registration(tel):
    s = samples(tel)
    for name in ("streamad_windows_scored_total", "streamad_alerts_total", "streamad_streams_active"):
        assert (name, (("pipeline", "audio"),)) in s
    assert value(tel, "streamad_threshold", pipeline="audio") == 6.5
    assert value(tel, "streamad_model_info", pipeline="audio", name="gmgan", version="gmgan-abc") == 1


def test_alert_latency_clamped_and_optional(tel):
    tel.alert("audio", -3.0)  # producer clock ahead of ours
    tel.alert("audio", None)
    tel.alert("audio", float("nan"))
    assert value(tel, "streamad_alerts_total", pipeline="audio") == 3
    assert value(tel, "streamad_alert_latency_seconds_count", pipeline="audio") == 1
    assert value(tel, "streamad_alert_latency_seconds_sum", pipeline="audio") == 0


def test_hearing_check_series_follows_the_loaded_model(tel):
    assert not [n for n, _ in samples(tel) if n == "streamad_model_hearing_check_auc"]  # registered without one
    tel.hearing_check("audio", 0.74)
    assert value(tel, "streamad_model_hearing_check_auc", pipeline="audio") == 0.74
    tel.hearing_check("audio", None)  # rolled to a model without a hearing check: no stale value
    assert not [n for n, _ in samples(tel) if n == "streamad_model_hearing_check_auc"]
    tel.add_pipeline("sensors", ["s"], "gmgan", "gmgan-x", 1.0, hearing_check=0.91)
    assert value(tel, "streamad_model_hearing_check_auc", pipeline="sensors") == 0.91


def test_model_roll_replaces_info_series(tel):
    tel.model_info("audio", "gmgan", "gmgan-def")
    s = samples(tel)
    infos = [k for k in s if k[0] == "streamad_model_info"]
    assert infos == [("streamad_model_info", (("name", "gmgan"), ("pipeline", "audio"), ("version", "gmgan-def")))]


def test_lag_per_partition_forget_and_max(tel):
    assert tel.max_lag() is None
    tel.set_lag("audio", 0, 5)
    tel.set_lag("audio", 1, 250)
    tel.set_lag("audio", 2, -4)  # a broker reporting a stale high watermark
    assert value(tel, "streamad_consumer_lag", pipeline="audio", topic="audio", partition="1") == 250
    assert value(tel, "streamad_consumer_lag", pipeline="audio", topic="audio", partition="2") == 0
    assert tel.max_lag() == 250
    tel.forget_partitions([("audio", 1), ("audio", 7)])
    assert tel.max_lag() == 5
    assert ("streamad_consumer_lag", (("partition", "1"), ("pipeline", "audio"), ("topic", "audio"))) not in samples(tel)


def test_gauges_and_quality_counters(tel):
    tel.streams_active("audio", 12)
    tel.paused_partitions("audio", 2)
    tel.scoring_queue_depth("audio", 40)
    tel.duplicates("audio", 3)
    tel.dropped_samples("audio", 160)
    tel.streams_evicted("audio")
    tel.nonfinite_scores("audio", 2)
    assert value(tel, "streamad_streams_active", pipeline="audio") == 12
    assert value(tel, "streamad_paused_partitions", pipeline="audio") == 2
    assert value(tel, "streamad_scoring_queue_depth", pipeline="audio") == 40
    assert value(tel, "streamad_duplicates_total", pipeline="audio") == 3
    assert value(tel, "streamad_dropped_samples_total", pipeline="audio") == 160
    assert value(tel, "streamad_streams_evicted_total", pipeline="audio") == 1
    assert value(tel, "streamad_nonfinite_scores_total", pipeline="audio") == 2


def test_window_score_quantiles_and_over_threshold_ratio(tel):
    scores = list(np.linspace(0.0, 9.9, 100)) + [float("nan"), float("inf")]
    tel.windows_scored("audio", len(scores), 0.1, scores)
    assert value(tel, "streamad_window_score", pipeline="audio", quantile="0.5") == pytest.approx(5.0)
    assert value(tel, "streamad_window_score", pipeline="audio", quantile="0.99") == pytest.approx(9.9)
    over = sum(s > 6.5 for s in scores[:100]) / 100  # non-finite scores are left out of the drift view
    assert value(tel, "streamad_window_score_over_threshold_ratio", pipeline="audio") == pytest.approx(over)
    tel.windows_scored("audio", 5000, 1.0, [1.0] * 5000)  # the window is bounded: old scores age out
    assert value(tel, "streamad_window_score", pipeline="audio", quantile="0.99") == 1.0


def test_private_registries_do_not_collide():
    a, b = T.Telemetry(), T.Telemetry()
    a.add_pipeline("p", ["t"], "m", "v", 1.0)
    b.add_pipeline("p", ["t"], "m", "v", 1.0)
    a.records("p", "t", 5)
    assert value(a, "streamad_records_total", pipeline="p", topic="t") == 5
    assert value(b, "streamad_records_total", pipeline="p", topic="t") == 0


def test_metric_names_are_exactly_what_is_rendered(tel):
    tel.records("audio", "audio")
    tel.windows_scored("audio", 1, 0.1, [1.0])
    tel.alert("audio", 0.3)
    tel.dead_letter("audio", "missing header 'dtype'")
    tel.set_lag("audio", 0, 1)
    tel.commit()
    tel.g_assigned.set(1)
    tel.g_broker.set(1)
    tel.g_tick.set(1)
    tel.stream_drifts("audio", {"mic-1": 0.5})
    tel.topic_partitions("audio", 4)
    tel.hearing_check("audio", 0.9)
    rendered = {name for name, _ in samples(tel)}
    assert rendered == set(T.METRIC_NAMES)
    assert not any(n.endswith("_created") for n in rendered)
    required = {"streamad_windows_scored_total", "streamad_alerts_total", "streamad_dead_letters_total",
                "streamad_records_total", "streamad_consumer_lag", "streamad_streams_active",
                "streamad_score_seconds_bucket", "streamad_alert_latency_seconds_bucket",
                "streamad_model_info", "streamad_threshold"}
    assert required <= T.METRIC_NAMES


# -- dead-letter reasons ---------------------------------------------------------------------
def _real_reasons() -> list[str]:
    """Reasons produced by the real decoders and buffers for a battery of bad records."""
    from streamad.io.codecs import PayloadError, decode_audio
    from streamad.io.readings import decode_readings

    ok = [("sample_rate", b"16000"), ("dtype", b"int16"), ("channels", b"1"), ("timestamp", b"1.0")]
    audio = [
        (None, b"\0\0", ok), (b"\xff\xfe", b"\0\0", ok), (b"x" * 300, b"\0\0", ok),
        (b"s", b"\0\0", ok[1:]), (b"s", b"\0\0", [("sample_rate", b"fast")] + ok[1:]),
        (b"s", b"\0\0", [("sample_rate", b"0")] + ok[1:]), (b"s", b"\0\0", ok[:1] + [("dtype", b"u8")] + ok[2:]),
        (b"s", b"", ok), (b"s", b"\0\0\0", ok),
        (b"s", np.array([np.nan], np.float32).tobytes(), ok[:1] + [("dtype", b"float32")] + ok[2:]),
        (b"s", b"\0\0", ok[:3] + [("timestamp", b"nan")]),
    ]
    series = [b"", b"\xff", b"{", b"[]", b'{"ts": 1, "t0": 2}', b'"x"', b'{"ts": "yesterday", "values": {"a": 1}}',
              b'{"ts": 1, "values": {"a": "high"}}', b'{"ts": 1, "values": {"b": 1}}', b'{"ts": 1}',
              b'{"t0": 0, "rate_hz": 1, "channels": ["a"], "values": [[1, 2]]}', b'{"ts": 1, "values": {}}',
              b'{"t0": 0, "rate_hz": -1, "channels": ["a"], "values": [[1]]}', b'{"ts": 1e300, "values": {"a": 1}}']
    out = []
    for key, val, headers in audio:
        with pytest.raises(PayloadError) as e:
            decode_audio(key, val, headers)
        out.append(str(e.value))
    out.append("sample_rate 8000 does not match the model's 16000")  # raised by the daemon itself
    for val in series:
        with pytest.raises(PayloadError) as e:
            decode_readings(b"s", val, [], ["a"])
        out.append(str(e.value))
    out.append("lobby: 3 reading(s) too late (12 .. 14): more than 5 s behind the newest reading (20)")
    out.append("unprocessable record (KeyError: 'x')")
    return out


def test_every_real_reason_gets_a_specific_class():
    reasons = _real_reasons()
    classes = {r: T.reason_class(r) for r in reasons}
    assert all(c in T.REASON_CLASSES for c in classes.values())
    assert [r for r, c in classes.items() if c == "other"] == []
    assert len(set(classes.values())) >= 10  # the vocabulary is not one catch-all


def test_reason_label_values_stay_bounded(tel):
    rng = random.Random(0)
    for _ in range(500):
        junk = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 80)))
        assert tel.dead_letter("audio", junk) in T.REASON_CLASSES
    for r in _real_reasons():
        tel.dead_letter("audio", r)
    reasons = {dict(labels)["reason"] for (name, labels) in samples(tel) if name == "streamad_dead_letters_total"}
    assert reasons <= set(T.REASON_CLASSES)
    assert T.reason_class("too_late") == "too_late"  # a class name passes through
    assert T.reason_class("something new: x") == "other"


def test_partition_lags_from_a_consumer():
    from kafka.structs import TopicPartition as TP

    class FakeConsumer:
        hw = {TP("a", 0): 100, TP("a", 1): None, TP("a", 2): 7}

        def assignment(self):
            return set(self.hw)

        def highwater(self, tp):
            return self.hw[tp]

    lags = T.partition_lags(FakeConsumer(), {TP("a", 0): 40, TP("a", 1): 3, TP("a", 2): 9})
    assert lags == {("a", 0): 60, ("a", 2): 0}
