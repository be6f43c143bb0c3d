"""Losing the broker, and records the Kafka client cannot decode.

The daemon's :class:`Supervisor` runs once per loop iteration (``Daemon.observe``):

* **reachability**: a background probe sends a Kafka ApiVersions request to the bootstrap
  servers every second (PLAINTEXT and SASL_PLAINTEXT listeners; with TLS the consumer's own
  connection state is used). One log line when the broker goes away, one when it is back (with
  how long it was away). The clients reconnect by themselves, backing off up to 5 s between
  attempts. No broker for ``kafka.broker_timeout_s``: :class:`DaemonExit` with code 3.
* **the embedded broker** (``bootstrap_servers: null``): a broker process that died is reaped,
  logged and restarted on the same port (its memory storage is gone: topics are re-created),
  up to ``kafka.embedded_restarts`` times; then :class:`DaemonExit` with code 4.
* **restarted logs**: a partition whose high watermark is below the daemon's position (the log
  is shorter than what was read) or whose topic id changed (deleted and re-created) is read
  again from its start, once, with one log line; its buffers and offsets are forgotten. A
  shorter log first refreshes the metadata, so a re-created topic restarts all its partitions
  at once and is not restarted again by the client's next periodic refresh.
* **a starved consumer**: records wait (lag > 0) yet none arrived for ``STALL_AFTER_S``: one warning
  line per ``STALL_AFTER_S`` (:class:`StallWatch`) — a broker that accepts records but no longer
  serves fetches (the embedded broker does that past ~30 000 batches per partition, see README),
  or partitions paused behind a scorer that does not return. ``/readyz`` fails on the lag too.
* **unreadable records**: a poll that fails on a record the client cannot decode (a header name
  that is not UTF-8, a corrupt batch) is answered by finding the partition and offset with a
  separate probe consumer, a placeholder dead letter and a seek past it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from kafka import errors as kerr
from kafka.consumer.fetcher import RecordTooLargeError
from kafka.structs import TopicPartition

from streamad.broker import BrokerError, api_versions_ok
from streamad.daemon.health import kafka_connected
from streamad.errors import first_line
from streamad.io import kafka as kio
from streamad.io.deadletter import placeholder

log = logging.getLogger("streamad.daemon")

EXIT_NO_BROKER = 3
EXIT_BROKER_DIED = 4
# What a poll raises for a record the client cannot decode
_RECORD_ERRORS = (kerr.CorruptRecordError, RecordTooLargeError, UnicodeDecodeError)


class DaemonExit(RuntimeError):
    """Stop the daemon with ``code`` and a one-line message (no broker, embedded broker died)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class BrokerProbe:
    """A daemon thread sending ApiVersions to the bootstrap servers; ``ok`` is the latest answer."""

    def __init__(self, bootstrap: str, every_s: float = 1.0, timeout_s: float = 2.0):
        self.servers = []
        for hp in bootstrap.split(","):
            host, _, port = hp.strip().rpartition(":")
            self.servers.append((host.strip("[]"), int(port)))
        self.every_s, self.timeout_s = every_s, timeout_s
        self.ok = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamad-broker-probe", daemon=True)

    def start(self) -> "BrokerProbe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ok = any(api_versions_ok(h, p, self.timeout_s) for h, p in self.servers)
            self._stop.wait(self.every_s)


def revive_embedded(b: Any, restarts_left: int, on_restart: Callable[[], None] | None = None) -> int:
    """When the embedded broker ``b`` has exited, start it again on its port (then ``on_restart``:
    the topics again, its storage is gone) and return the restarts left; DaemonExit(4) once
    ``kafka.embedded_restarts`` is used up. A restart that fails uses up a restart too. Used by the
    daemon and by the parent of ``run --processes N``, which holds the broker for its children."""
    if b is None or b.proc is None or b.proc.poll() is None:
        return restarts_left
    code = b.proc.returncode  # poll() reaped it: no zombie
    why = ""
    while True:
        if restarts_left <= 0:
            raise DaemonExit(EXIT_BROKER_DIED, f"the embedded broker exited (code {code}){why} and "
                                               f"kafka.embedded_restarts is used up")
        restarts_left -= 1
        log.error("the embedded broker exited (code %s)%s; restarting it on %s (%d restart(s) left)", code,
                  why, b.bootstrap, restarts_left)
        b.requested_port = b.port
        b.proc = None
        try:
            b.start()
            if on_restart is not None:
                on_restart()
            log.info("the embedded broker is back on %s", b.bootstrap)
            return restarts_left
        except (BrokerError, kerr.KafkaError, OSError) as e:
            why = f", could not be restarted ({e})"


class Supervisor:
    def __init__(self, daemon: Any, embedded: Any = None, on_embedded_restart: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        k = daemon.kcfg
        self.d, self.clock = daemon, clock
        self.timeout_s = k.broker_timeout_s
        self.embedded, self.on_embedded_restart = embedded, on_embedded_restart
        self.restarts_left = k.embedded_restarts
        self.down_since: float | None = None
        self.why = ""
        self.trouble: dict[str, str] = {}  # a failing commit or poll (why), until the next good one
        self.topic_ids: dict[str, Any] = {}
        self.last_log_check = -1e9
        tls = str(k.client.get("security_protocol", "PLAINTEXT")).upper() in ("SSL", "SASL_SSL")
        self.probe = None if tls else BrokerProbe(daemon.bootstrap).start()

    def stop(self) -> None:
        if self.probe is not None:
            self.probe.stop()

    # -- once per loop iteration -----------------------------------------------------------
    def tick(self) -> bool:
        """Check everything; True while a broker is reachable."""
        self.check_embedded()
        if "commit" in self.trouble and (self.probe is None or self.probe.ok):
            self.d.commit()  # acknowledgements and offsets left pending while the broker was away
        up = self.check_reachable()
        if up and self.clock() - self.last_log_check > 1.0:
            self.last_log_check = self.clock()
            self.check_logs()
        return up

    def check_embedded(self) -> None:
        self.restarts_left = revive_embedded(self.embedded, self.restarts_left, self.on_embedded_restart)

    def check_reachable(self) -> bool:
        up = self.probe.ok if self.probe is not None else kafka_connected(self.d.consumer)
        up = up and not self.trouble
        now = self.clock()
        if not up and self.down_since is None:
            self.down_since = now
            self.why = "; ".join(self.trouble.values()) or "no answer from the bootstrap servers"
            log.warning("broker unreachable (%s); reconnecting with backoff", self.why)
        elif up and self.down_since is not None:
            log.info("broker reachable again after %.1f s", now - self.down_since)
            self.down_since = None
        if self.down_since is not None and self.timeout_s is not None and now - self.down_since > self.timeout_s:
            raise DaemonExit(EXIT_NO_BROKER, f"no broker reachable for {now - self.down_since:.0f} s "
                                             f"(kafka.broker_timeout_s = {self.timeout_s:g}; {self.why})")
        return up

    def unavailable(self, source: str, why: str) -> None:
        """A commit or poll failed for want of a broker (until the next good one from ``source``)."""
        self.trouble[source] = why

    def available(self, source: str) -> None:
        self.trouble.pop(source, None)

    # -- polls ------------------------------------------------------------------------------
    def poll(self, timeout_ms: int) -> dict:
        """``consumer.poll``; an unreadable record is skipped with a placeholder dead letter."""
        if kio.mend_lost_join(self.d.consumer):
            log.warning("the group join finished between two polls and the client dropped its result "
                        "(kafka-python 3.0.12); joining again")
        try:
            out = self.d.consumer.poll(timeout_ms=timeout_ms)
        except _RECORD_ERRORS as e:
            self.skip_unreadable(e)
            return {}
        except kerr.KafkaError as e:
            self.unavailable("poll", f"poll failed: {type(e).__name__}: {str(e)[:120]}")
            time.sleep(timeout_ms / 1000)
            return {}
        self.available("poll")
        return out

    def skip_unreadable(self, exc: BaseException) -> None:
        found = self._find_unreadable()
        if found is None:
            log.warning("poll failed on a record the client cannot decode (%s); its partition was not found",
                        str(exc)[:200])
            return
        tp, offset = found
        pipe = self.d.routes[tp.topic]
        reason = f"unprocessable record (the Kafka client cannot decode it: {first_line(exc, 200)})"
        log.warning("dead-letter %s/%d@%d: %s", tp.topic, tp.partition, offset, reason)
        self.d.ledger.seen(tp, offset)
        self.d.consumer.seek(tp, offset + 1)
        self.d.counters.dead_letters += 1
        self.d.tel.dead_letter(pipe.label, reason)
        src = f"{tp.topic}/{tp.partition}/{offset}"
        self.d.ledger.placeholders += 1
        self.d.ledger.send(pipe.cfg.kafka.dead_letter_topic,
                           *placeholder(src, reason, "the Kafka client cannot decode the record", known=False))

    def _positions(self, timeout_ms: int):
        """(partition, high watermark, position) of each assigned partition whose position is known."""
        c = self.d.consumer
        for tp in c.assignment():
            hw = c.highwater(tp)
            try:
                pos = c.position(tp, timeout_ms=timeout_ms)
            except kerr.KafkaError:
                continue
            yield tp, hw, pos

    def _find_unreadable(self) -> tuple[TopicPartition, int] | None:
        """The (partition, offset) whose next record a fresh consumer cannot decode either."""
        candidates = [(tp, pos) for tp, hw, pos in self._positions(1000)
                      if pos is not None and (hw is None or pos < hw)]
        probe = kio.consumer(self.d.kcfg, self.d.bootstrap, group_id=None, max_poll_records=1)
        try:
            for tp, pos in candidates:
                probe.assign([tp])
                probe.seek(tp, pos)
                try:
                    for _ in range(10):
                        if probe.poll(timeout_ms=300):
                            break
                except _RECORD_ERRORS:
                    return tp, pos
        finally:
            probe.close()
        return None

    # -- restarted logs ---------------------------------------------------------------------
    def check_logs(self) -> None:
        """Partitions whose log restarted are read again from their start, once.

        A shorter log (end before our position) or a lost group commit says a partition restarted,
        but not whether its whole topic was re-created: the metadata the client holds may be minutes
        old (``metadata_max_age_ms``). So the metadata is refreshed first, then the topic ids compared:
        a new id restarts every assigned partition of that topic now (also those whose new log has
        already grown past our position), and the new id is remembered at once, so the client's next
        periodic refresh does not restart them a second time (which read everything since again)."""
        c = self.d.consumer
        suspects: dict[TopicPartition, str] = {}
        for tp, hw, pos in self._positions(100):
            if hw is not None and pos is not None and pos > hw:
                suspects[tp] = f"its end ({hw}) is before the position ({pos})"
        for tp in self.d.ledger.lost_commits():
            suspects.setdefault(tp, "the group's committed offset is gone (the broker lost its state)")
        if suspects:
            self._refresh_metadata()
        restarted: dict[TopicPartition, str] = {}
        for topic in self.d.routes:
            tid = c._client.cluster.topic_id(topic)  # kafka-python 3.0.x keeps topic ids from metadata
            old = self.topic_ids.get(topic)
            if tid is not None:
                self.topic_ids[topic] = tid
            if old is not None and tid is not None and tid != old:
                restarted.update({tp: "its topic was re-created (new topic id)" for tp in c.assignment()
                                  if tp.topic == topic})
        for tp, why in suspects.items():
            restarted.setdefault(tp, why)
        for tp, why in sorted(restarted.items()):
            log.warning("partition %s/%d: the log restarted (%s); reading it again from its start", tp.topic,
                        tp.partition, why)
            self.d.forget_partitions([tp])
            c.seek_to_beginning(tp)

    def _refresh_metadata(self, timeout_s: float = 2.0) -> None:
        """Fetch the cluster metadata now (topic ids included); waits at most ``timeout_s`` (the
        client's own network thread sends the request and resolves the future)."""
        fut = self.d.consumer._client.cluster.request_update()
        end = time.monotonic() + timeout_s
        while not fut.is_done and time.monotonic() < end:
            time.sleep(0.005)
        if not fut.succeeded():  # the ids stay as they were; a later refresh compares them
            log.debug("metadata refresh did not finish: %s", fut.exception if fut.is_done else "timed out")


STALL_AFTER_S = 60.0


class StallWatch:
    """Notices a consumer that gets nothing although records wait for it."""

    def __init__(self, after_s: float = STALL_AFTER_S, clock: Callable[[], float] = time.monotonic):
        self.after_s, self.clock = after_s, clock
        self.records = -1
        self.since = self.said = clock()

    def update(self, records: int, lag: int) -> str | None:
        """``records``: consumed so far; ``lag``: records waiting now. A message when it is time to warn."""
        now = self.clock()
        if records != self.records or lag <= 0:
            self.records, self.since = records, now
            return None
        if now - self.since < self.after_s or now - self.said < self.after_s:
            return None
        self.said = now
        return (f"no record consumed for {now - self.since:.0f} s while {lag} wait (consumer lag): the broker "
                "accepts records but does not serve them, or the partitions are paused behind the scorer")
