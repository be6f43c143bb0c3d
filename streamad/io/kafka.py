"""kafka-python clients with the settings streamad relies on.

* Consumer: manual commits only (the daemon commits after alerts are acknowledged).
* Producer: acks=all, idempotent-friendly retries; callers ``flush`` and check
  every future before committing.
* Topic creation for the embedded broker (which would otherwise auto-create
  topics with 4 partitions).
"""
from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401  (kafka-python 3.0.12 warns at import)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamad.config import KafkaConfig

MAX_MESSAGE = 16 * 1024 * 1024


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
        client_id="streamad",
    )
    if cfg.session_timeout_ms is not None:
        opts["session_timeout_ms"] = cfg.session_timeout_ms
    if cfg.heartbeat_interval_ms is not None:
        opts["heartbeat_interval_ms"] = cfg.heartbeat_interval_ms
    opts.update(cfg.client)
    opts.update(extra)
    return KafkaConsumer(**opts)


def producer(cfg: KafkaConfig, bootstrap: str, **extra: Any) -> KafkaProducer:
    opts: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=1024 * 1024,
        max_request_size=MAX_MESSAGE, retries=5, client_id="streamad",
    )
    opts.update({k: v for k, v in cfg.client.items() if k not in _CONSUMER_ONLY})
    opts.update(extra)
    return KafkaProducer(**opts)


_CONSUMER_ONLY = {"session_timeout_ms", "heartbeat_interval_ms", "max_poll_records", "auto_offset_reset",
                  "fetch_max_bytes", "max_partition_fetch_bytes", "group_id", "enable_auto_commit",
                  "max_poll_interval_ms", "fetch_min_bytes", "fetch_max_wait_ms", "isolation_level"}


def ensure_topics(bootstrap: str, topics: list[str], partitions: int, client: dict[str, Any] | None = None) -> None:
    """Create missing topics with ``partitions`` partitions (existing ones are left alone)."""
    opts = {k: v for k, v in (client or {}).items() if k in _ADMIN_KEYS}
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


_ADMIN_KEYS = {"security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
               "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_check_hostname",
               "sasl_kerberos_service_name", "sasl_oauth_token_provider", "request_timeout_ms"}
