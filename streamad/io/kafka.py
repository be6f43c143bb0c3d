"""kafka-python clients with the settings streamad relies on.

* Consumer: manual commits only (the daemon commits after alerts are acknowledged).
* Producer: acks=all, idempotent-friendly retries; callers ``flush`` and check
  every future before committing.
* Topic creation for the embedded broker (which would otherwise auto-create
  topics with 4 partitions).
"""
from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Callable

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401  (kafka-python 3.0.12 warns at import)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kerr
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamad.config import KafkaConfig

MAX_MESSAGE = 16 * 1024 * 1024


class BrokerTimeout(RuntimeError):
    """No broker answered for the allowed time (exit code 3)."""


def connect(make: Callable[[], Any], what: str, timeout_s: float | None,
            stopping: Callable[[], bool] = lambda: False, say: Callable[[str], None] | None = None) -> Any:
    """``make()`` a client, retrying with backoff (1 s doubling to 5 s) while no broker answers;
    BrokerTimeout after ``timeout_s`` (None: forever); None when ``stopping()`` turns true. One line
    through ``say`` (default: the log) when the wait starts and one when it ends."""
    say = say or logging.getLogger("streamad.kafka").warning
    t0, delay, waiting = time.monotonic(), 1.0, False
    while True:
        try:
            client = make()
        except (kerr.KafkaTimeoutError, kerr.KafkaConnectionError) as e:
            waited = time.monotonic() - t0
            if timeout_s is not None and waited >= timeout_s:
                raise BrokerTimeout(f"no broker reachable for {waited:.0f} s ({type(e).__name__})") from None
            if not waiting:
                say(f"broker unreachable while creating the {what} ({type(e).__name__}); retrying")
                waiting = True
            if stopping():
                return None
            time.sleep(delay)
            delay = min(5.0, delay * 2)
            continue
        if waiting:
            say(f"broker reachable: {what} created after {time.monotonic() - t0:.1f} s")
        return client

RECONNECT_BACKOFF_MAX_MS = 5000  # reconnect attempts back off exponentially up to this (kafka-python: 30 s)


def _bootstrap_ms(cfg: KafkaConfig) -> int:
    """One attempt to reach the bootstrap servers lasts at most this (the caller retries, ``connect``)."""
    return int(min(30.0, cfg.broker_timeout_s or 30.0) * 1000)


def _patience_ms(cfg: KafkaConfig) -> int:
    """How long a produced record may wait for the broker before the client gives up on it: past the
    daemon's own ``broker_timeout_s`` (which then exits 3), so an outage never fails a delivery first."""
    return int(((cfg.broker_timeout_s or 86400.0) + 60.0) * 1000)


def consumer(cfg: KafkaConfig, bootstrap: str, group_id: str | None = None, **extra: Any) -> KafkaConsumer:
    opts: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id or cfg.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=cfg.max_poll_records,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=50,  # low alert latency: do not let the broker sit on a fetch
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        bootstrap_timeout_ms=_bootstrap_ms(cfg),
        client_id="streamad",
    )
    if cfg.session_timeout_ms is not None:
        opts["session_timeout_ms"] = cfg.session_timeout_ms
    if cfg.heartbeat_interval_ms is not None:
        opts["heartbeat_interval_ms"] = cfg.heartbeat_interval_ms
    opts.update(client_options(cfg.client, KafkaConsumer))
    opts.update(extra)
    return KafkaConsumer(**opts)


def mend_lost_join(c: KafkaConsumer) -> bool:
    """Re-request a group join whose result kafka-python 3.0.12 dropped; True when it did.

    A rebalance the group leader starts itself (a subscribed topic re-created with another partition
    count, a new topic matching a pattern) runs JoinGroup and SyncGroup in the client's network
    thread. When both finish between two polls, the leader's fresh assignment already matches the
    metadata, so the next poll finds nothing to rejoin and never applies the result: the consumer
    keeps no partitions, and no rebalance callback runs, until the metadata changes again. The
    signature is a member still marked as rejoining that no longer needs to; asking for a rejoin
    then makes the next poll finish the join (one more JoinGroup / SyncGroup round).
    """
    co = getattr(c, "_coordinator", None)
    if co is None or not getattr(co, "rejoining", False) or co.need_rejoin():
        return False
    co.request_rejoin()
    return True


def producer(cfg: KafkaConfig, bootstrap: str, **extra: Any) -> KafkaProducer:
    opts: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=1024 * 1024,
        max_request_size=MAX_MESSAGE, client_id="streamad",
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        bootstrap_timeout_ms=_bootstrap_ms(cfg),
        max_block_ms=5000,  # send() waits this long for metadata, then the ledger retries at the next commit
        delivery_timeout_ms=_patience_ms(cfg),
    )
    opts.update(client_options(cfg.client, KafkaProducer))
    opts.update(extra)
    return KafkaProducer(**opts)


# Options streamad sets itself: overriding them would break its guarantees or its wire formats.
_RESERVED = {"bootstrap_servers": "kafka.bootstrap_servers", "group_id": "kafka.group_id",
             "enable_auto_commit": "manual commits after acknowledged alerts",
             "key_serializer": "the wire format", "value_serializer": "the wire format",
             "key_deserializer": "the wire format", "value_deserializer": "the wire format"}


def check_client_options(client: dict[str, Any]) -> None:
    """``kafka.client`` keys must be kafka-python options streamad does not set itself (ConfigError)."""
    from streamad.config import ConfigError

    defaults = {**KafkaAdminClient.DEFAULT_CONFIG, **KafkaProducer.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG}
    for k, v in client.items():
        if k in _RESERVED:
            raise ConfigError(f"kafka.client.{k}: set by streamad ({_RESERVED[k]}); remove it here")
        if k not in defaults:
            raise ConfigError(f"kafka.client.{k}: not a kafka-python client option")
        _check_option_value(k, v, defaults[k], ConfigError)


_COUNTS = ("_ms", "_bytes", "_size", "_records", "_count", "retries", "_connections",
           "_in_flight_requests_per_connection")


def _check_option_value(key: str, value: Any, default: Any, error: type[Exception]) -> None:
    """A value of the option's own type; times, sizes and counts are not negative."""
    if key == "acks":
        if value not in (0, 1, -1, "all"):
            raise error(f"kafka.client.acks: must be 0, 1, -1 or 'all', got {value!r}")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise error(f"kafka.client.{key}: expected true or false, got {value!r}")
    elif isinstance(default, (int, float)) or key.endswith(_COUNTS):
        if value is None and default is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise error(f"kafka.client.{key}: expected a number, got {value!r}")
        if key.endswith(_COUNTS) and value < 0:
            raise error(f"kafka.client.{key}: must be >= 0, got {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise error(f"kafka.client.{key}: expected a string, got {value!r}")


def client_options(client: dict[str, Any], cls: type) -> dict[str, Any]:
    """The ``kafka.client`` options that apply to this client class (consumer, producer, admin)."""
    return {k: v for k, v in client.items() if k in cls.DEFAULT_CONFIG}


def ensure_topics(bootstrap: str, topics: list[str], partitions: int, client: dict[str, Any] | None = None) -> None:
    """Create missing topics with ``partitions`` partitions (existing ones are left alone)."""
    opts = client_options(client or {}, KafkaAdminClient)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamad-admin", **opts)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, partitions, 1) for t in dict.fromkeys(topics) if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
