"""The daemon: poll loop (:mod:`.loop`), per-config pipelines (:mod:`.pipeline`) and the offset
ledger that owns the commit order (:mod:`.ledger`)."""
from streamad.daemon.ledger import DeliveryError, OffsetLedger
from streamad.daemon.loop import Daemon, setup_logging
from streamad.daemon.pipeline import Pipeline

__all__ = ["Daemon", "DeliveryError", "OffsetLedger", "Pipeline", "setup_logging"]
