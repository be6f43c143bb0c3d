"""The daemon's HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics``.

A stdlib ``ThreadingHTTPServer`` on a daemon thread, so a scrape or a probe never waits for the
main loop (and a stuck main loop is exactly what ``/healthz`` must be able to report).

* ``/healthz`` (liveness): 200 while the main loop has ticked within ``stuck_after_s``; else 503.
* ``/readyz`` (readiness): 200 only when every check passes: ``loop`` (as /healthz), ``broker``
  (the consumer holds a broker connection), ``models`` (all models loaded), ``partitions`` (the
  group assignment has arrived; **zero partitions counts as ready**: a replica beyond the
  partition count is a standby that takes over on the next rebalance, and must not hold up a
  rollout), ``lag`` (the largest partition lag is at most ``ready_max_lag``; no lag known yet
  passes) and ``stopping`` (no SIGTERM received). Else 503 with the failing checks.
* ``/metrics``: the ``Telemetry`` registry in the Prometheus text format (OpenMetrics when the
  scraper asks for it), gzip when accepted.

Bodies of /healthz and /readyz are one line of JSON. Only GET and HEAD are served.

The bind address defaults to ``127.0.0.1``: the endpoint has no authentication and tells
topology (topics, partitions, model versions), so exposing it is a deliberate choice
(``metrics.host: 0.0.0.0`` in containers, where the network namespace is the boundary).
"""
from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client.exposition import choose_encoder, gzip_accepted

from streamad.daemon.telemetry import Telemetry

log = logging.getLogger("streamad.health")


class HealthState:
    """What the probes report; the daemon's main loop updates it, HTTP threads read it."""

    def __init__(self, telemetry: Telemetry | None = None, stuck_after_s: float = 120.0,
                 ready_max_lag: int = 10000, clock: Callable[[], float] = time.monotonic):
        self.telemetry = telemetry
        self.stuck_after_s = stuck_after_s
        self.ready_max_lag = ready_max_lag
        self.clock = clock
        self._lock = threading.Lock()
        self._last_tick = clock()  # start-up counts as a tick: the grace period is stuck_after_s
        self._broker_up = False
        self._models_loaded = False
        self._assigned: int | None = None  # None: no assignment yet
        self._stopping = False
        if telemetry is not None:
            telemetry.g_ready.set_function(lambda: 1.0 if self.ready()[0] else 0.0)

    # -- updates from the daemon -------------------------------------------------------
    def tick(self) -> None:
        """Call once per main-loop iteration."""
        with self._lock:
            self._last_tick = self.clock()
        if self.telemetry is not None:
            self.telemetry.g_tick.set(time.time())

    def set_broker_up(self, up: bool) -> None:
        with self._lock:
            self._broker_up = bool(up)
        if self.telemetry is not None:
            self.telemetry.g_broker.set(1 if up else 0)

    def set_assigned(self, n: int) -> None:
        """Partitions now assigned (call from the rebalance listener; 0 is a valid answer)."""
        with self._lock:
            self._assigned = int(n)
        if self.telemetry is not None:
            self.telemetry.g_assigned.set(n)

    def set_models_loaded(self, loaded: bool) -> None:
        with self._lock:
            self._models_loaded = bool(loaded)

    def set_stopping(self) -> None:
        """SIGTERM received: report unready so traffic and rollouts move on while the batch finishes."""
        with self._lock:
            self._stopping = True

    # -- answers ------------------------------------------------------------------------
    def live(self) -> tuple[bool, str]:
        with self._lock:
            age = self.clock() - self._last_tick
        if age > self.stuck_after_s:
            return False, f"main loop has not ticked for {age:.1f} s (stuck_after_s={self.stuck_after_s:g})"
        return True, f"main loop ticked {age:.1f} s ago"

    def ready(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        live_ok, live_msg = self.live()
        with self._lock:
            broker, models, assigned, stopping = self._broker_up, self._models_loaded, self._assigned, self._stopping
        lag = self.telemetry.max_lag() if self.telemetry is not None else None
        checks = {
            "loop": (live_ok, live_msg),
            "broker": (broker, "connected" if broker else "no broker connection"),
            "models": (models, "loaded" if models else "model(s) not loaded"),
            "partitions": (assigned is not None,
                           "waiting for the group assignment" if assigned is None
                           else f"{assigned} assigned" + (" (standby)" if assigned == 0 else "")),
            "lag": (lag is None or lag <= self.ready_max_lag,
                    "no lag known yet" if lag is None else f"max lag {lag} (ready_max_lag={self.ready_max_lag})"),
            "stopping": (not stopping, "stopping" if stopping else "running"),
        }
        out = {k: {"ok": bool(ok), "detail": msg} for k, (ok, msg) in checks.items()}
        return all(c["ok"] for c in out.values()), out


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a kept-alive or slow connection may hold its thread

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def _route(self, head: bool) -> None:
        self._head = head  # one handler serves every request of a kept-alive connection
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                ok, msg = self.server.state.live()
                self._json(200 if ok else 503, {"status": "ok" if ok else "stuck", "detail": msg})
            elif path == "/readyz":
                ok, checks = self.server.state.ready()
                failing = [k for k, c in checks.items() if not c["ok"]]
                self._json(200 if ok else 503, {"ready": ok, "failing": failing, "checks": checks})
            elif path == "/metrics":
                self._metrics()
            else:
                self._json(404, {"error": "not found", "paths": ["/healthz", "/readyz", "/metrics"]})
        except Exception as e:  # a probe must get an answer, never a dropped connection
            log.exception("health endpoint %s failed", path)
            self._json(500, {"error": type(e).__name__})

    def _metrics(self) -> None:
        encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.server.registry)
        headers = {"Content-Type": ctype}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=5), "gzip"
        self._send(200, body, headers)

    def _json(self, code: int, obj: dict) -> None:
        body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self._send(code, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

    def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self._head:
            self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:  # probes every few seconds: not INFO material
        log.debug("%s " + fmt, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], state: HealthState, registry: Any):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.state, self.registry = state, registry
        super().__init__(addr, _Handler)


class HealthServer:
    """``/healthz``, ``/readyz``, ``/metrics`` on ``host:port`` (port 0 binds a free port: tests)."""

    def __init__(self, state: HealthState, registry: Any, host: str = "127.0.0.1", port: int = 0):
        self._server = _Server((host, port), state, registry)
        self._thread = threading.Thread(target=self._server.serve_forever, name="streamad-health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never started
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def start_health_server(mcfg: Any, state: HealthState, telemetry: Telemetry) -> HealthServer | None:
    """Start the endpoint from a ``MetricsConfig``; ``port: 0`` means off (returns None)."""
    if not mcfg.port:
        return None
    return HealthServer(state, telemetry.registry, mcfg.host, mcfg.port).start()


def kafka_connected(consumer: Any) -> bool:
    """True while a kafka-python consumer holds a connection to at least one broker it knows.

    Uses the client's connection table (kafka-python 3.0.x; ``tests/test_health.py`` checks it on
    the real broker): connected while the broker is up, False within moments of it going away
    (a paused broker: after ``request_timeout_ms``).
    """
    try:
        client = consumer._client
        return any(client.connected(b.node_id) for b in client.cluster.brokers())
    except Exception:
        return False
