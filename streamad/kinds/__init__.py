"""Input kinds: ``cfg.kind`` -> its front end, file loader, record decoder and stream buffer.

A new input kind is one module in this package plus one line in :data:`KINDS`.
"""
from __future__ import annotations

from typing import Any

from streamad.kinds.audio import AudioKind
from streamad.kinds.base import DataError, Kind, Recording
from streamad.kinds.series import SeriesKind
from streamad.kinds.tabular import TabularKind

KINDS: dict[str, Kind] = {
    AudioKind.name: AudioKind(),
    SeriesKind.name: SeriesKind(),
    TabularKind.name: TabularKind(),
}


def kind_of(cfg_or_name: Any) -> Kind:
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.kind
    try:
        return KINDS[name]
    except KeyError:
        from streamad.config import ConfigError

        raise ConfigError(f"kind: unknown input kind {name!r} (known: {', '.join(sorted(KINDS))})") from None


__all__ = ["KINDS", "DataError", "Kind", "Recording", "kind_of"]
