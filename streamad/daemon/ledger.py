"""The offset ledger: consumed, held and committed offsets, and the one commit order.

Only :meth:`OffsetLedger.commit` commits, always in this order (as quixstreams' Checkpoint):

1. flush the producer;
2. check the acknowledgement of every record produced since the last commit (alerts, dead
   letters) — one failure raises :class:`DeliveryError` and nothing is committed, so a
   restart re-reads from the last commit and re-publishes (same alert ids);
3. commit, per partition, the smaller of the next offset to consume and the oldest offset the
   pipelines still *need* (records whose samples a future window uses, or that opened an alert
   event still in progress).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from kafka.structs import OffsetAndMetadata, TopicPartition

log = logging.getLogger("streamad.daemon")

Needed = dict[tuple[str, int], int]


class DeliveryError(RuntimeError):
    """The broker did not acknowledge an alert or dead letter; nothing after it is committed."""


class OffsetLedger:
    def __init__(self, consumer: Any, producer: Any, ack_timeout_s: float = 30.0):
        self.consumer, self.producer = consumer, producer
        self.ack_timeout_s = ack_timeout_s
        self.consumed: dict[TopicPartition, int] = {}  # next offset to read per partition
        self.committed: dict[TopicPartition, int] = {}
        self.pending: list[Any] = []  # produce futures not yet checked
        self.rewind: dict[TopicPartition, int] = {}  # revoked partitions: where to re-read if they return
        self.commits = 0
        self.failed: DeliveryError | None = None  # a delivery failure seen inside a rebalance callback

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self.consumed[tp] = offset + 1

    def track(self, future: Any) -> None:
        self.pending.append(future)

    def safe_offsets(self, needed: Needed, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Per partition: min(next offset to read, oldest offset still needed)."""
        want = set(tps) if tps is not None else None
        return {tp: min(c, needed.get((tp.topic, tp.partition), c)) for tp, c in self.consumed.items()
                if want is None or tp in want}

    def acknowledge(self) -> None:
        """Steps 1-2: flush, then every pending future must have succeeded."""
        if not self.pending:
            return
        self.producer.flush(timeout=self.ack_timeout_s)
        pending, self.pending = self.pending, []
        for f in pending:
            try:
                f.get(timeout=self.ack_timeout_s)
            except Exception as e:  # refused or timed out: do not commit past it
                raise DeliveryError(f"alert/dead-letter delivery failed: {e}") from e

    def commit(self, needed: Needed, tps: Iterable[TopicPartition] | None = None) -> int:
        """Acknowledge, then commit what is safe; returns the number of partitions committed."""
        self.acknowledge()
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self.safe_offsets(needed, tps).items()
                   if self.committed.get(tp) != o}
        if offsets:
            self.consumer.commit(offsets)
            self.commits += 1
            for tp, om in offsets.items():
                self.committed[tp] = om.offset
        return len(offsets)

    def revoke(self, tps: Iterable[TopicPartition], needed: Needed) -> None:
        """Partitions leave: commit what is safe and remember it, so that a partition that comes
        straight back (eager rebalancing revokes everything) is re-read from there (its buffers
        are dropped)."""
        tps = set(tps)
        self.rewind.update(self.safe_offsets(needed, tps))
        try:
            self.commit(needed, tps)
        except DeliveryError as e:  # raised inside the client's callback: the loop re-raises it
            self.failed = e
        except Exception as e:  # the group may already have moved on; the new owner re-reads
            log.warning("commit on revoke failed: %s", e)
        for tp in tps:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)

    def assigned(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            off = self.rewind.pop(tp, None)
            if off is not None:
                self.consumer.seek(tp, off)
        self.rewind.clear()
