"""The offset ledger: consumed, held and committed offsets, and the one commit order.

Only :meth:`OffsetLedger.commit` commits, always in this order (as quixstreams' Checkpoint):

1. flush the producer;
2. check the acknowledgement of every record produced since the last commit (alerts, dead
   letters; :meth:`OffsetLedger.send`) — one failure raises :class:`DeliveryError` and nothing
   is committed, so a restart re-reads from the last commit and re-publishes (same alert ids);
3. commit, per partition, the smaller of the next offset to consume and the oldest offset the
   pipelines still *need* (records whose samples a future window uses, or that opened an alert
   event still in progress) — never below what this process already committed for the partition.

A broker that does not answer (flush or commit timing out) is not a delivery failure: the ledger
raises :class:`BrokerUnavailable`, keeps everything pending and the next commit tries again (the
daemon's supervisor decides when the wait is too long). A commit the group refuses because it is
rebalancing is skipped with one log line: the partitions' next owner re-reads from the last commit.

Dead letters (:meth:`OffsetLedger.send_dead_letter`) are the original record plus headers; a copy
the client or the broker refuses as it is goes as a placeholder (``io/deadletter.py``) instead of
stopping the daemon. Alerts that cannot be delivered still raise :class:`DeliveryError`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from kafka import errors as kerr
from kafka.structs import OffsetAndMetadata, TopicPartition

from streamad.errors import described
from streamad.io.deadletter import dead_letter, placeholder_for, sendable

log = logging.getLogger("streamad.daemon")

Needed = dict[tuple[str, int], int]
Fallback = Callable[[str], tuple]  # why the record was refused -> (key, value, headers) to send instead

# The record itself is at fault (not the broker's availability): send the fallback instead.
_RECORD_ERRORS = (kerr.MessageSizeTooLargeError, kerr.RecordListTooLargeError, kerr.InvalidRecordError,
                  kerr.CorruptRecordError, TypeError, ValueError, AssertionError)
# The group is rebalancing: this process may no longer own the partitions; skip the commit.
_GROUP_ERRORS = (kerr.CommitFailedError, kerr.RebalanceInProgressError, kerr.UnknownMemberIdError,
                 kerr.IllegalGenerationError, kerr.FencedInstanceIdError)


class DeliveryError(RuntimeError):
    """The broker did not acknowledge an alert or dead letter; nothing after it is committed."""


class BrokerUnavailable(RuntimeError):
    """No answer from the broker (flush or commit timed out); everything stays pending."""


@dataclass
class _Out:
    """A record produced (or still to produce) whose acknowledgement the next commit waits for."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list | None
    on_ack: Callable[[], None] | None = None
    fallback: Fallback | None = None
    future: Any = None  # None: not handed to the producer yet (no metadata while the broker was away)


class OffsetLedger:
    def __init__(self, consumer: Any, producer: Any, ack_timeout_s: float = 10.0, commit_timeout_s: float = 10.0):
        self.consumer, self.producer = consumer, producer
        self.ack_timeout_s, self.commit_timeout_s = ack_timeout_s, commit_timeout_s
        self.consumed: dict[TopicPartition, int] = {}  # next offset to read per partition
        self.committed: dict[TopicPartition, int] = {}
        self.pending: list[_Out] = []  # produced, not yet acknowledged
        self.placeholders = 0  # dead letters sent as placeholders
        self.rewind: dict[TopicPartition, int] = {}  # revoked partitions: where to re-read if they return
        self.last_commit: dict[TopicPartition, int] = {}  # survives revocations (see lost_commits)
        self.verify: dict[TopicPartition, int] = {}  # re-assigned partitions whose group commit to check
        self.commits = 0

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self.consumed[tp] = offset + 1

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None = None,
             on_ack: Callable[[], None] | None = None, fallback: Fallback | None = None) -> None:
        """Produce a record whose acknowledgement the next commit waits for (``on_ack`` runs once
        it is acknowledged). A record the client or the broker refuses (too large, bad headers) is
        replaced by ``fallback(why)`` when there is one; else DeliveryError (at once, or at the commit).
        A broker that is away delays the record to the next commit, never drops it."""
        out = _Out(topic, key, value, headers, on_ack, fallback)
        if self._produce(out, raise_unavailable=False):
            self.pending.append(out)

    def _produce(self, out: _Out, raise_unavailable: bool = True) -> bool:
        """Hand ``out`` to the producer; False when it was replaced by its fallback."""
        try:
            out.future = self.producer.send(out.topic, key=out.key, value=out.value, headers=out.headers)
        except kerr.KafkaTimeoutError as e:  # no metadata for the topic: the broker is away
            if raise_unavailable:
                raise BrokerUnavailable(f"cannot reach the broker to publish to {out.topic}") from e
        except Exception as e:
            if out.fallback is None or not isinstance(e, _RECORD_ERRORS):
                raise DeliveryError(f"cannot publish to {out.topic}: {type(e).__name__}: {e}") from e
            self._send_fallback(out, e)
            return False
        return True

    def _send_fallback(self, out: _Out, e: BaseException) -> None:
        why = f"the copy was refused ({described(e, 200)})"
        self.placeholders += 1
        self.send(out.topic, *out.fallback(why))

    def send_dead_letter(self, topic: str, record: Any, reason: str) -> None:
        """The record's dead-letter copy, or its placeholder when the copy cannot be sent as it is."""
        def fallback(why: str) -> tuple:
            return placeholder_for(record, reason, why)

        bad = sendable(record)
        if bad is not None:
            self.placeholders += 1
            self.send(topic, *placeholder_for(record, reason, f"the copy cannot be sent as it is ({bad})"))
        else:
            self.send(topic, *dead_letter(record, reason), fallback=fallback)

    def safe_offsets(self, needed: Needed, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Per partition: min(next offset to read, oldest offset still needed), never below the last commit."""
        want = set(tps) if tps is not None else None
        return {tp: max(min(c, needed.get((tp.topic, tp.partition), c)), self.committed.get(tp, 0))
                for tp, c in self.consumed.items() if want is None or tp in want}

    def acknowledge(self) -> None:
        """Steps 1-2: flush, then every pending record must have been acknowledged (refused dead letters
        are replaced by their placeholders, which must succeed in turn)."""
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                for i, out in enumerate(batch):
                    if out.future is None and not self._produce(out):
                        batch[i] = None
                self.producer.flush(timeout=self.ack_timeout_s)
            except (BrokerUnavailable, kerr.KafkaTimeoutError) as e:
                self.pending = [o for o in batch if o is not None] + self.pending
                raise BrokerUnavailable(f"the broker did not acknowledge within {self.ack_timeout_s:g} s") from e
            for out in batch:
                if out is None:
                    continue
                try:
                    out.future.get(timeout=self.ack_timeout_s)
                except Exception as e:  # refused or timed out: do not commit past it
                    if out.fallback is not None and isinstance(e, _RECORD_ERRORS):
                        self._send_fallback(out, e)
                        continue
                    raise DeliveryError(f"alert/dead-letter delivery failed: {e}") from e
                if out.on_ack is not None:
                    out.on_ack()

    def commit(self, needed: Needed, tps: Iterable[TopicPartition] | None = None) -> int:
        """Acknowledge, then commit what is safe; returns the number of partitions committed."""
        self.acknowledge()
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self.safe_offsets(needed, tps).items()
                   if self.committed.get(tp) != o}
        if not offsets:
            return 0
        try:
            self.consumer.commit(offsets, timeout_ms=int(self.commit_timeout_s * 1000))
        except _GROUP_ERRORS as e:
            log.warning("commit skipped, the group is rebalancing (%s); the partitions' owner re-reads from the "
                        "last commit", type(e).__name__)
            return 0
        except kerr.KafkaError as e:
            raise BrokerUnavailable(f"commit failed: {type(e).__name__}") from e
        self.commits += 1
        for tp, om in offsets.items():
            self.committed[tp] = self.last_commit[tp] = om.offset
        return len(offsets)

    def reset(self, tp: TopicPartition) -> None:
        """Forget a partition's offsets (its log restarted): the next commit starts from what is read now."""
        self.consumed.pop(tp, None)
        self.committed.pop(tp, None)
        self.rewind.pop(tp, None)
        self.last_commit.pop(tp, None)

    def revoke(self, tps: Iterable[TopicPartition], needed: Needed) -> None:
        """Partitions leave. Nothing new needs committing: every poll ends with a commit and the
        rebalance callback runs inside the next poll (kafka-python 3 cannot block on a commit from
        its IO thread anyway). Remember the safe offsets, so that a partition that comes straight
        back (eager rebalancing revokes everything) is re-read from there: its buffers are gone."""
        tps = set(tps)
        self.rewind.update(self.safe_offsets(needed, tps))
        for tp in tps:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)

    def assigned(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            off = self.rewind.pop(tp, None)
            if off is not None:
                self.consumer.seek(tp, off)
            if self.last_commit.get(tp, 0) > 0:
                self.verify[tp] = self.last_commit[tp]
        self.rewind.clear()

    def lost_commits(self) -> list[TopicPartition]:
        """Re-assigned partitions this group had committed but whose commit the broker no longer has:
        the broker lost its state (a restart with empty storage, or the group was deleted), so the
        log is a new one even when it has already grown past our old position. Called from the poll
        loop (one OffsetFetch per re-assigned partition), not from the rebalance callback."""
        lost = []
        for tp in list(self.verify):
            del self.verify[tp]
            if tp not in self.consumer.assignment():
                continue
            try:
                if self.consumer.committed(tp, timeout_ms=2000) is None:
                    lost.append(tp)
            except kerr.KafkaError:  # the broker is away again: the next assignment checks once more
                continue
        return lost
