"""The daemon: poll loop (:mod:`.loop`), per-config pipelines (:mod:`.pipeline`), the offset ledger
that owns the commit order (:mod:`.ledger`), metrics (:mod:`.telemetry`), the health/metrics HTTP
endpoint (:mod:`.health`) and logging setup (:mod:`.logs`).

Names are re-exported lazily, so ``import streamad.daemon.telemetry`` does not pull in torch and
kafka.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {"Daemon": "loop", "Pipeline": "pipeline", "DeliveryError": "ledger", "OffsetLedger": "ledger",
            "setup_logging": "logs"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"streamad.daemon.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'streamad.daemon' has no attribute {name!r}")
