"""The health/metrics endpoint over real HTTP (urllib), and the broker check on the real broker."""
from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request

import pytest

from streamad.config import MetricsConfig
from streamad.daemon.health import HealthServer, HealthState, kafka_connected, start_health_server
from streamad.daemon.telemetry import METRIC_NAMES, Telemetry


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env():
    clock = Clock()
    tel = Telemetry()
    tel.add_pipeline("audio", ["audio"], "gmgan", "gmgan-abc", 6.5)
    state = HealthState(tel, stuck_after_s=30, ready_max_lag=100, clock=clock)
    srv = HealthServer(state, tel.registry, "127.0.0.1", 0).start()
    yield clock, tel, state, f"http://127.0.0.1:{srv.port}"
    srv.stop()


def get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def make_ready(state: HealthState) -> None:
    state.set_broker_up(True)
    state.set_models_loaded(True)
    state.set_assigned(4)
    state.tick()


def test_healthz_turns_503_when_the_loop_stops_ticking(env):
    clock, _, state, base = env
    code, headers, body = get(base + "/healthz")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == "ok"
    clock.t += 31
    code, _, body = get(base + "/healthz")
    assert code == 503
    assert body.count(b"\n") == 1  # one line of JSON
    doc = json.loads(body)
    assert doc["status"] == "stuck" and "31.0 s" in doc["detail"]
    state.tick()
    assert get(base + "/healthz")[0] == 200


def test_readyz_lists_failing_checks_until_all_pass(env):
    _, _, state, base = env
    code, _, body = get(base + "/readyz")
    assert code == 503
    doc = json.loads(body)
    assert doc["ready"] is False and set(doc["failing"]) == {"broker", "models", "partitions"}
    make_ready(state)
    code, _, body = get(base + "/readyz")
    assert code == 200 and json.loads(body)["failing"] == []


def test_readyz_unready_when_broker_lost_lagging_stuck_or_stopping(env):
    clock, tel, state, base = env
    make_ready(state)
    state.set_broker_up(False)
    assert json.loads(get(base + "/readyz")[2])["failing"] == ["broker"]
    state.set_broker_up(True)
    tel.set_lag("audio", 0, 101)
    assert json.loads(get(base + "/readyz")[2])["failing"] == ["lag"]
    tel.set_lag("audio", 0, 100)
    assert get(base + "/readyz")[0] == 200
    clock.t += 31
    assert json.loads(get(base + "/readyz")[2])["failing"] == ["loop"]
    state.tick()
    state.set_stopping()
    assert json.loads(get(base + "/readyz")[2])["failing"] == ["stopping"]


def test_zero_partitions_is_a_ready_standby(env):
    _, _, state, base = env
    make_ready(state)
    state.set_assigned(0)
    code, _, body = get(base + "/readyz")
    assert code == 200
    assert "standby" in json.loads(body)["checks"]["partitions"]["detail"]


def test_metrics_text_format_and_names(env):
    _, tel, state, base = env
    make_ready(state)
    tel.records("audio", "audio", 7)
    code, headers, body = get(base + "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'streamad_records_total{pipeline="audio",topic="audio"} 7.0' in text
    assert "streamad_ready 1.0" in text and "streamad_broker_up 1.0" in text
    assert "streamad_partitions_assigned 4.0" in text
    for name in ("streamad_windows_scored_total", "streamad_alerts_total", "streamad_threshold",
                 "streamad_model_info", "streamad_score_seconds_bucket", "streamad_alert_latency_seconds_bucket"):
        assert name in METRIC_NAMES and name + "{" in text
    state.set_broker_up(False)
    assert "streamad_ready 0.0" in get(base + "/metrics")[2].decode()


def test_metrics_openmetrics_and_gzip_when_asked(env):
    _, _, _, base = env
    code, headers, body = get(base + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0",
                                                 "Accept-Encoding": "gzip"})
    assert code == 200 and headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body).decode()
    assert text.rstrip().endswith("# EOF") and "streamad_alerts_total" in text


def test_keep_alive_connection_serves_head_then_get(env):
    import http.client

    _, _, _, base = env
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
    try:
        conn.request("HEAD", "/healthz")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b""
        conn.request("GET", "/healthz")  # same connection, same handler object
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    finally:
        conn.close()


def test_unknown_path_head_and_post(env):
    _, _, _, base = env
    assert get(base + "/nope")[0] == 404
    code, headers, body = get(base + "/healthz", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert get(base + "/healthz", method="POST")[0] == 501


def test_port_zero_in_config_means_off_and_a_port_binds():
    tel = Telemetry()
    state = HealthState(tel)
    assert start_health_server(MetricsConfig(port=0), state, tel) is None
    probe = HealthServer(state, tel.registry, "127.0.0.1", 0)  # pick a free port, then reuse it
    port = probe.port
    probe.stop()
    srv = start_health_server(MetricsConfig(port=port, host="127.0.0.1"), state, tel)
    try:
        assert srv.port == port and get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        srv.stop()


@pytest.mark.broker
def test_kafka_connected_follows_the_real_broker():
    from kafka.errors import KafkaError

    from streamad.broker import EmbeddedBroker
    from streamad.config import KafkaConfig
    from streamad.io import kafka as kio

    b = EmbeddedBroker().start()  # a broker of its own: this test stops it
    c = kio.consumer(KafkaConfig(session_timeout_ms=2000, heartbeat_interval_ms=600, group_id="health"), b.bootstrap)
    try:
        assert not kafka_connected(c)  # nothing known yet
        kio.ensure_topics(b.bootstrap, ["health"], 1)
        c.subscribe(["health"])
        deadline = time.monotonic() + 20
        while not kafka_connected(c) and time.monotonic() < deadline:
            c.poll(timeout_ms=200)
        assert kafka_connected(c)
        b.stop()
        deadline = time.monotonic() + 20
        while kafka_connected(c) and time.monotonic() < deadline:
            try:
                c.poll(timeout_ms=200)
            except KafkaError:  # the client may report the lost broker; what matters is the answer below
                time.sleep(0.2)
        assert not kafka_connected(c)
    finally:
        c.close(autocommit=False)
        b.stop()


@pytest.mark.broker
def test_partition_lags_on_the_real_broker(broker, unique):
    from streamad.config import KafkaConfig
    from streamad.daemon.telemetry import partition_lags
    from streamad.io import kafka as kio

    topic = f"lag-{unique}"
    kio.ensure_topics(broker.bootstrap, [topic], 1)
    p = kio.producer(KafkaConfig(), broker.bootstrap)
    for i in range(60):
        p.send(topic, key=b"k", value=b"x")
        if i % 20 == 19:
            p.flush()  # several record batches
    p.close(timeout=10)
    kcfg = KafkaConfig(session_timeout_ms=2000, heartbeat_interval_ms=600, group_id=f"g-{unique}")
    c = kio.consumer(kcfg, broker.bootstrap, max_poll_records=10)
    c.subscribe([topic])
    consumed, seen, n = {}, [], 0
    try:
        deadline = time.monotonic() + 30
        while n < 60 and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=200).items():
                consumed[tp] = recs[-1].offset + 1
                n += len(recs)
            lags = partition_lags(c, consumed)
            if lags:
                seen.append(lags[(topic, 0)])
                assert lags[(topic, 0)] == 60 - n
    finally:
        c.close(autocommit=False)
    assert n == 60 and seen[0] >= 40 and seen[-1] == 0


def test_stall_watch_warns_once_a_minute_only_when_records_wait_and_none_arrive():
    from streamad.daemon.supervisor import StallWatch

    now = [0.0]
    w = StallWatch(after_s=60.0, clock=lambda: now[0])
    said = []
    for t in range(0, 301, 5):  # 0-100 s flowing, 100-300 s nothing consumed while 500 wait
        now[0] = float(t)
        records = min(t, 100) * 10
        msg = w.update(records, 500 if t >= 100 else 3)
        if msg:
            said.append((t, msg))
    assert [t for t, _ in said] == [160, 220, 280]
    assert "no record consumed for 60 s while 500 wait" in said[0][1]
    now[0] = 400.0
    assert w.update(1000, 0) is None  # caught up: lag 0 resets the watch
    now[0] = 500.0
    assert w.update(1000, 0) is None and w.update(1000, 7) is None  # waiting again, but not 60 s yet
