"""Hot model reload: SIGHUP (``systemctl reload streamad``, ``kill -HUP PID``).

The signal handler only sets a flag. Between two polls — after every complete window of the last
poll was scored, its alerts produced and its offsets committed: a window boundary — each
pipeline loads its model again from the model directory its config names now (the config file
is read again, only ``model.path`` is taken from it; ``streamad run --model DIR`` reloads DIR).

The new model is loaded and checked like at start-up (every field of model.json, the weights'
hash, a dry run) and must fit the running streams: the same kind, sample rate or reading rate,
window and hop (series: the same channels), so every buffered partial window stays valid. Then
it replaces the old one: windows cut from then on are scored by the new model (alert ids carry
its version); no window is lost or scored by both. The per-stream alert rule starts afresh (the
old model's scores and open events do not carry over to a new threshold).

A model that cannot be loaded or does not fit is refused with one log line; the old model keeps
running. One log line per pipeline reloaded.
"""
from __future__ import annotations

import logging
from typing import Any

from streamad.config import ConfigError, load as load_config
from streamad.errors import first_line
from streamad.model import AnomalyModel, ModelFileError

log = logging.getLogger("streamad.daemon")


def incompatibility(old: AnomalyModel, new: AnomalyModel) -> str | None:
    """Why ``new`` cannot take over the running streams of ``old`` (None: it can)."""
    if new.cfg.kind != old.cfg.kind:
        return f"kind {new.cfg.kind!r} differs from the running {old.cfg.kind!r}"
    # the context before the window is named before the window length it lengthens (e.g. one model
    # escalated by train.escalate_to, the other not)
    for attr, what in (("rate", "rate"), ("lead", "context (samples)"), ("window", "window"), ("hop", "hop")):
        a, b = getattr(old.frontend, attr), getattr(new.frontend, attr)
        if a != b:
            hint = " (the audio it hears before each window); restart the daemon to switch" if attr == "lead" else ""
            return f"{what} {b} differs from the running model's {a}{hint}"
    if old.cfg.kind == "series" and list(new.cfg.series.channels) != list(old.cfg.series.channels):
        return f"channels {new.cfg.series.channels} differ from the running {old.cfg.series.channels}"
    return None


class Reloader:
    def __init__(self, daemon: Any):
        self.d = daemon
        self.requested = False
        self.model_override: dict[str, str] = {}  # pipeline label -> model dir given with --model
        self.reloads = self.refused = 0

    def request(self, *_: Any) -> None:
        """The SIGHUP handler: only a flag; the reload happens between polls."""
        self.requested = True

    def maybe_reload(self) -> None:
        if not self.requested:
            return
        self.requested = False
        swapped = False
        for pipe in self.d.pipelines:
            swapped |= self.reload(pipe)
        if swapped and self.d.ledger is not None:
            self.d.commit()  # the old model's event holds are gone

    def model_dir(self, pipe: Any) -> str:
        if pipe.label in self.model_override:
            return self.model_override[pipe.label]
        return load_config(pipe.name).model.path

    def reload(self, pipe: Any) -> bool:
        old = pipe.model
        try:
            path = self.model_dir(pipe)
            new = AnomalyModel.load(path, device=old.device)
            why = incompatibility(old, new)
            if why:
                raise ModelFileError(f"{path}: {why}")
        except (ModelFileError, ConfigError, OSError) as e:
            self.refused += 1
            log.error("model reload refused for pipeline %s: %s; %s keeps running", pipe.label,
                      first_line(e, 300), old.version)
            return False
        pipe.swap_model(new)
        self.reloads += 1
        self.d.tel.model_info(pipe.label, new.name, new.version)
        self.d.tel.threshold(pipe.label, new.threshold)
        self.d.tel.hearing_check(pipe.label, new.hearing_check)
        log.info("model reloaded for pipeline %s: %s -> %s (threshold %.4g -> %.4g) from %s", pipe.label,
                 old.version, new.version, old.threshold, new.threshold, path)
        return True
