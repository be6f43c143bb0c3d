"""The daemon package: the main loop (``loop``), metrics (``telemetry``), the health/metrics HTTP
endpoint (``health``) and logging setup (``logs``).

``Daemon``, ``DeliveryError`` and ``Pipeline`` are re-exported lazily from ``loop`` so that
``from streamad.daemon import Daemon`` keeps working while ``import streamad.daemon.telemetry``
does not pull in torch and kafka. ``setup_logging`` is ``logs.setup_logging(level, fmt="text")``,
a superset of the old ``loop.setup_logging(level)`` (same text format by default).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Daemon", "DeliveryError", "Pipeline", "setup_logging"]


def __getattr__(name: str) -> Any:
    if name in ("Daemon", "DeliveryError", "Pipeline"):
        from streamad.daemon import loop

        return getattr(loop, name)
    if name == "setup_logging":
        from streamad.daemon.logs import setup_logging

        return setup_logging
    raise AttributeError(f"module 'streamad.daemon' has no attribute {name!r}")
