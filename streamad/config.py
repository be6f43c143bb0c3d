"""Typed configuration loaded from YAML.

Every section is a dataclass; unknown keys and wrong types are rejected with one
line that names the offending key (``ConfigError``), which the CLI turns into
exit code 2.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


@dataclass
class KafkaConfig:
    bootstrap_servers: str | None = None  # None -> start the embedded broker
    embedded_port: int = 0  # port for the embedded broker (0 = any free port)
    input_topics: list[str] = field(default_factory=lambda: ["audio"])  # topics this pipeline consumes
    alert_topic: str = "alerts"  # where alerts and event_closed records go
    dead_letter_topic: str = "dead-letter"  # where records that cannot be used go, with the reason
    group_id: str = "streamad"  # consumer group (every pipeline of one process shares it)
    partitions: int = 4  # used when streamad creates missing topics
    # Small values only work against the embedded broker (Apache Kafka needs >= 6000).
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None  # null: the client default (embedded broker: 600)
    max_poll_records: int = 500  # records per poll
    poll_timeout_ms: int = 200  # how long one poll waits for records
    # Offsets are committed at most this often (each commit after the acknowledgements of every alert
    # and dead letter before it); 0: after every scored batch. A crash re-reads at most this much more.
    commit_interval_s: float = 0.5
    # No broker reachable for this long: the daemon exits with code 3 (null: wait forever).
    broker_timeout_s: float | None = 300.0
    # The embedded broker (bootstrap_servers: null) died: restart it up to this many times, then exit 4.
    embedded_restarts: int = 3
    # Extra kafka-python options passed through verbatim (security_protocol,
    # sasl_mechanism, sasl_plain_username, ssl_cafile, ...).
    client: dict[str, Any] = field(default_factory=dict)


@dataclass
class AudioConfig:
    sample_rate: int = 16000  # chunks must arrive at this rate (streamad replay resamples files)
    window_s: float = 1.0  # seconds per window (one patch)
    # Seconds of the stream just before each window handed to the model with it, for detectors that
    # hear context (frame_sfx: its CNN sees ~1.4 s; declared by the detector's ``uses_context``); the
    # log-mel patches and every other detector see the window alone, and a window's time, labels and
    # alerts stay its own window_s. A stream's first window (and the first after a gap) stands for the
    # span after one context_s of audio, so every window is scored with its full context. 0 = none.
    context_s: float = 0.0
    hop_s: float = 0.5  # seconds between window starts (on an absolute grid)
    n_fft: int = 1024  # STFT size
    n_mels: int = 32  # mel bands (patch rows)
    frames: int = 32  # STFT frames per window (patch columns)
    fmin: float = 50.0  # lowest mel frequency, Hz
    fmax: float | None = None  # None -> sample_rate / 2
    # Chunks whose capture time jumps by more than this from the expected next
    # sample start a new segment (the partial window before the gap is dropped).
    gap_tolerance_s: float = 0.05
    # A chunk starting at most this far before the stream's newest sample is a resend (its overlapping
    # samples are dropped as duplicates); one starting further back, or after a gap, does not continue
    # the stream: it waits for the stream's next chunk to decide (README "Time rules").
    resend_horizon_s: float = 10.0
    # Take each window relative to its own level: subtract the median over its bands and frames of
    # the log-mel deviation from the training mean (dB), so a microphone's gain change or a louder
    # background is not an event; a sound that covers under half the window keeps its contrast.
    level_norm: bool = False
    # Train on copies of the normal audio at these gains too (dB, e.g. [-3, 3]): the model learns
    # that the same sounds a few dB louder or quieter are normal. Calibration stays on the audio as
    # recorded. [] = off.
    train_gains_db: list[float] = field(default_factory=list)
    # Train on this many mixed copies of the normal audio too: each training window summed with
    # another one drawn at random, divided by sqrt(2) (the level of one), so that overlaps of normal
    # sounds are normal. Calibration stays on the audio as recorded. 0 = off.
    train_mix: int = 0
    # Outlier exposure without recorded events: this many windows with one generic synthetic sound
    # mixed in (a tone, a sweep or a decaying noise burst at -12..+6 dB to the window) per normal
    # training window, at most 16 000, given as labelled windows to a detector that uses them
    # (frame_fullgmm with model.params.exposure > 0). Never in the front-end statistics or the
    # calibration. 0 = off.
    train_synthetic: float = 0.0


@dataclass
class SeriesConfig:
    channels: list[str] = field(default_factory=list)  # empty -> learned from training data
    representation: str = "patch"  # "patch" | "spectrogram" | "beats"
    rate_hz: float = 1.0  # expected readings per second
    window: int = 64  # readings per window
    hop: int = 16  # readings between window starts
    late_tolerance_s: float = 5.0  # late readings within this are placed, older go to DLQ
    max_gap: int = 3  # missing readings filled by interpolation up to this many; longer -> segment restarts
    lag_fraction: float | None = None  # patch: delay-embedding span as a fraction of the window (None = auto)


@dataclass
class TabularConfig:
    label_column: str | None = None  # CSV column / NPZ-MAT key / NPY column index with 0/1 labels
    ignore_columns: list[str] = field(default_factory=list)  # CSV columns that are not features (ids...)
    categorical: list[str] = field(default_factory=list)  # one-hot these too (non-numeric columns always are)
    data_key: str = "X"  # NPZ / MAT: the feature array
    scaling: str = "standard"  # per-feature scaling learned at training: standard | minmax | none
    columns: list[str] = field(default_factory=list)  # learned at training, stored with the model (leave empty)
    categories: dict[str, list[str]] = field(default_factory=dict)  # learned at training: one-hot levels (leave empty)


@dataclass
class ModelConfig:
    detector: str = "gmgan"  # a registered detector (streamad detectors lists them)
    path: str = "models/audio"  # model directory used by `streamad run`
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    params: dict[str, Any] = field(default_factory=dict)  # detector hyper-parameters
    # Weight of each standardised score component (empty -> all equal), e.g. {irec: 1, energy: 0.5}
    score_weights: dict[str, float] = field(default_factory=dict)
    # Audio: alternatives to score_weights chosen per model at training (streamad/weight_choice.py): the
    # set whose score best tells the held-back normal windows from the same windows with one generic
    # synthetic sound each (scored by models that never saw them) is kept; [] = score_weights as given
    score_weights_choice: list[dict[str, float]] = field(default_factory=list)

    def weight_sets(self) -> list[tuple[str, dict[str, float]]]:
        """(config key, weights) of score_weights and each alternative, in order (the first is the default)."""
        return [("model.score_weights", self.score_weights)] + [
            (f"model.score_weights_choice[{i}]", w) for i, w in enumerate(self.score_weights_choice)]


@dataclass
class TrainConfig:
    seed: int = 0  # training seed (same data + seed + threads = same model)
    train_hop_s: float = 0.125  # denser windows for training than for scoring
    holdout_fraction: float = 0.2  # normal windows held back for calibration
    # auto: holdout when it leaves enough calibration windows, else cross-fitting (short history);
    # holdout | crossfit force one (see streamad/train.py)
    calibration: str = "auto"
    crossfit_folds: int = 3  # K for cross-fitting (fewer when the data is too short for K folds)
    # blocks per fold: each recording is cut into K x this many contiguous blocks, dealt to the folds
    # in turn (1: K contiguous blocks; 2: fold i holds blocks i and i + K), so a fold model has heard
    # every part of the recording; fewer when the blocks would be shorter than 2 windows
    crossfit_blocks: int = 1
    # cross-fitted threshold: pooled (from all out-of-fold scores together) | median (the median of the
    # K thresholds fitted on each fold's scores: one block unlike the others does not set it alone)
    crossfit_threshold: str = "pooled"
    # Calibrate on joins too: each held-back stretch of normal data is also scored looped on itself
    # (its end followed by its start), so the threshold has seen the click or level jump of a seam
    # in the normal data (a looped recording, a cut between recordings), not only its continuous stretches. Those
    # windows only put a floor under the threshold (never lower it; not part of the rate estimate).
    seam_windows: bool = False
    # Joins per held-back stretch with seam_windows: 1 = its end to its own start; J > 1 = also J - 1
    # joins of the stretch cut at a random point and spliced to another random point of it. A new seam
    # scores above the largest of J exchangeable joins with probability at most 1 / (J + 1).
    seam_joins: int = 1
    # Audio: score the held-back windows with one generic synthetic sound each too, and record (and print,
    # and warn below 0.85) how well the model tells them from the plain ones: how well it can hear events
    # in this place (streamad/weight_choice.py). Costs scoring up to 4096 more windows at training
    hearing_check: bool = True
    # Audio, with escalate_to: the hearing-check ROC-AUC below which training escalates
    escalate_below: float = 0.85
    # Audio: a costlier model for the places this one hears badly. When the hearing check of the model
    # trained with this config is below escalate_below, training replaces it with one trained on the same
    # audio with this config's audio / model / train / alerts sections overridden by escalate_to (mappings
    # merged key by key; model.params, model.score_weights and lists replaced whole). null = never.
    escalate_to: dict[str, Any] | None = None
    # torch CPU threads for training (0 = torch's default, all cores). Use 1 when other
    # CPU-heavy processes share the machine: small convolutions slow down many times over
    # when their threads have to wait for each other.
    threads: int = 0


@dataclass
class AlertConfig:
    target_false_alerts_per_hour: float = 1.0  # the calibrated threshold aims at this many false alerts per hour
    min_windows: int = 1  # windows over threshold (within `of_windows`) before an alert
    of_windows: int = 1  # the k-of-n smoothing window (k = min_windows)
    cooldown_s: float = 2.0  # windows within this time after an alert extend it
    # Evidence (off when null): per alert a PNG of the opening window (input, reconstruction,
    # residual) and, for audio, a WAV of the event from pre_s before to post_s after (at most max_s)
    evidence_dir: str | None = None
    evidence_pre_s: float = 1.0  # audio evidence: seconds before the event
    evidence_post_s: float = 1.0  # audio evidence: seconds after the event
    evidence_max_s: float = 10.0  # audio evidence: longest WAV, seconds
    # Per-stream drift: running mean of each stream's normal (non-alerting) scores, half-life in
    # stream time; exported as streamad_stream_score_drift for the most drifted streams.
    drift_halflife_s: float = 600.0
    # Optional per-stream threshold adjustment (off by default): after adapt_warmup_s of stream
    # time, a stream's threshold is raised by how far its normal scores sit above the calibration's
    # normal mean (never lowered, at most adapt_max_offset): a microphone moved to a noisier room
    # stops flooding alerts (and is visible in the drift metric).
    adapt_threshold: bool = False
    adapt_warmup_s: float = 600.0  # stream time before a stream's threshold may be raised
    adapt_max_offset: float = 10.0  # the most a stream's threshold is raised (score units)


@dataclass
class WorkerConfig:
    max_batch: int = 256  # most windows per scoring pass (GPU: raise it, e.g. 4096)
    idle_stream_s: float = 300.0  # a stream silent this long (stream time, or wall time) is forgotten
    max_hold_s: float = 30.0  # the longest (stream time) one stream may hold its partition's commit back
    max_streams: int = 2000  # streams per pipeline; beyond it the least recently seen stream is evicted
    max_record_bytes: int = 4 * 1024 * 1024  # larger records (chunks, readings) go to the dead-letter topic
    threads: int = 1  # torch CPU threads for scoring (the broker client shares the machine); 0 = torch default
    # Back-pressure: windows queued or being scored before the consumer pauses its partitions
    # (it resumes at half). Bounds memory (about 64 KB per 1 s audio window) and queueing delay.
    queue_windows: int = 1024
    # A scoring pass should take at most about this long: batches are capped at
    # latency_budget_s / (measured seconds per window), between 16 and max_batch.
    latency_budget_s: float = 0.1
    precision: str = "float32"  # float32 | float16 (CUDA only: network detectors under autocast, frame ones stay float32; CPU ignores it)
    # thread: the model runs in the worker thread; process: in a child process of its own (no interpreter
    # lock shared with the poll loop; one more torch in memory; see daemon/scorer_proc.py)
    scorer: str = "thread"


@dataclass
class MetricsConfig:
    """The HTTP endpoint (/healthz, /readyz, /metrics). Process-wide: the first --config's is used."""

    port: int = 0  # 0 = off; e.g. 9765
    host: str = "127.0.0.1"  # bind address; 0.0.0.0 in containers (the endpoint has no authentication)
    ready_max_lag: int = 10000  # /readyz fails while a partition is more records behind than this
    stuck_after_s: float = 120.0  # /healthz fails when the main loop has not ticked for this long


@dataclass
class LoggingConfig:
    """Process-wide: the first --config's is used; `streamad run --log-format` overrides it."""

    format: str = "text"  # text | json (one JSON object per line: ts, level, logger, message, extras)


@dataclass
class Config:
    kind: str = "audio"  # audio | series | tabular
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    series: SeriesConfig = field(default_factory=SeriesConfig)
    tabular: TabularConfig = field(default_factory=TabularConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    "series.representation": ("patch", "spectrogram", "beats"),
    "train.calibration": ("auto", "holdout", "crossfit"),
    "train.crossfit_threshold": ("pooled", "median"),
    "logging.format": ("text", "json"),
    "tabular.scaling": ("standard", "minmax", "none"),
    "worker.precision": ("float32", "float16"),
    "worker.scorer": ("thread", "process"),
}
_POSITIVE = {
    "audio.sample_rate", "audio.window_s", "audio.hop_s", "audio.n_fft", "audio.n_mels",
    "audio.frames", "series.rate_hz", "series.window", "series.hop", "kafka.partitions",
    "kafka.max_poll_records", "worker.max_batch", "alerts.target_false_alerts_per_hour",
    "alerts.min_windows", "alerts.of_windows", "train.crossfit_folds", "train.crossfit_blocks", "train.seam_joins", "alerts.evidence_max_s",
    "alerts.drift_halflife_s", "metrics.ready_max_lag", "metrics.stuck_after_s",
    "kafka.poll_timeout_ms", "audio.resend_horizon_s", "worker.idle_stream_s", "worker.max_hold_s",
    "worker.max_streams", "worker.max_record_bytes", "worker.queue_windows", "worker.latency_budget_s",
}
_NON_NEGATIVE = {
    "audio.gap_tolerance_s", "audio.context_s", "series.late_tolerance_s", "series.max_gap", "alerts.cooldown_s",
    "kafka.embedded_restarts", "kafka.embedded_port", "worker.threads", "train.threads", "kafka.commit_interval_s",
}
_OPTIONAL_POSITIVE = {"kafka.session_timeout_ms", "kafka.heartbeat_interval_ms", "kafka.broker_timeout_s"}
# Kafka's own rule for topic names (kafka.common.internals.Topic.validate)
_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9._-]+):(\d{1,5})$")


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_check_type(k, kt, f"{key} key {k!r}"): _check_type(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported type")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else str(k)
            raise ConfigError(f"{where}: unknown key (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data[f.name], key)
        else:
            kwargs[f.name] = _check_type(data[f.name], tp, key)
    return cls(**kwargs)


def validate(cfg: Config) -> Config:
    from streamad.kinds import KINDS  # the registry of input kinds (imported late: it needs this module)

    if cfg.kind not in KINDS:
        raise ConfigError(f"kind: must be one of {', '.join(sorted(KINDS))}, got {cfg.kind!r}")
    for key, allowed in _CHOICES.items():
        v = _get(cfg, key)
        if v not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {v!r}")
    for key in sorted(_POSITIVE):
        v = _get(cfg, key)
        if v is None or v <= 0:
            raise ConfigError(f"{key}: must be > 0, got {v!r}")
    for key in sorted(_NON_NEGATIVE):
        v = _get(cfg, key)
        if v < 0:
            raise ConfigError(f"{key}: must be >= 0, got {v!r}")
    for key in sorted(_OPTIONAL_POSITIVE):
        v = _get(cfg, key)
        if v is not None and v <= 0:
            raise ConfigError(f"{key}: must be > 0 (or null), got {v!r}")
    _validate_kafka(cfg.kafka)
    a = cfg.audio
    if a.hop_s > a.window_s:
        raise ConfigError(f"audio.hop_s: must be <= audio.window_s ({a.window_s}), got {a.hop_s}")
    if a.n_fft > a.window_s * a.sample_rate:
        raise ConfigError(f"audio.n_fft: must fit in one window ({int(a.window_s * a.sample_rate)} samples)")
    if a.context_s > 10:
        raise ConfigError(f"audio.context_s: must be at most 10 seconds, got {a.context_s}")
    if a.fmax is not None and not 0 < a.fmax <= a.sample_rate / 2:
        raise ConfigError(f"audio.fmax: must be in (0, sample_rate/2], got {a.fmax}")
    top = a.fmax if a.fmax is not None else a.sample_rate / 2
    if a.fmin >= top:  # every mel band would be empty: a model that hears nothing
        raise ConfigError(f"audio.fmin: must be below audio.fmax (or sample_rate/2 = {top:g} Hz), got {a.fmin}")
    lf = cfg.series.lag_fraction
    if lf is not None and not 0 <= lf < 1:
        raise ConfigError(f"series.lag_fraction: must be in [0, 1), got {lf}")
    if cfg.series.hop > cfg.series.window:
        raise ConfigError("series.hop: must be <= series.window")
    if not 0 <= cfg.train.seed < 2 ** 32:  # numpy's and torch's seeds
        raise ConfigError(f"train.seed: must be a whole number in [0, 2**32), got {cfg.train.seed}")
    if cfg.train.seam_joins > 256:
        raise ConfigError(f"train.seam_joins: must be at most 256, got {cfg.train.seam_joins}")
    if cfg.alerts.min_windows > cfg.alerts.of_windows:
        raise ConfigError("alerts.min_windows: must be <= alerts.of_windows")
    for key in ("alerts.evidence_pre_s", "alerts.evidence_post_s", "alerts.adapt_warmup_s", "alerts.adapt_max_offset"):
        if _get(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {_get(cfg, key)}")
    for g in cfg.audio.train_gains_db:
        if not isinstance(g, (int, float)) or isinstance(g, bool) or not math.isfinite(g) or abs(g) > 24:
            raise ConfigError(f"audio.train_gains_db: each gain must be a number of dB in [-24, 24], got {g!r}")
    if not 0 <= cfg.audio.train_mix <= 8:  # types: checked by _build (_check_type) already
        raise ConfigError(f"audio.train_mix: must be a whole number of mixed copies in [0, 8], got {cfg.audio.train_mix!r}")
    if not 0 <= cfg.audio.train_synthetic <= 8:
        raise ConfigError("audio.train_synthetic: synthetic windows per normal training window, a number in [0, 8], "
                          f"got {cfg.audio.train_synthetic!r}")
    for key, w in cfg.model.weight_sets():
        bad = [k for k, v in w.items() if v < 0]
        if bad:
            raise ConfigError(f"{key}.{bad[0]}: a score weight must be >= 0, got {w[bad[0]]}")
        if (w and not any(w.values())) or (key != "model.score_weights" and not w):
            raise ConfigError(f"{key}: needs at least one weight > 0")
    if cfg.model.score_weights_choice and cfg.kind != "audio":
        raise ConfigError("model.score_weights_choice: the choice mixes synthetic sounds into held-back windows; "
                          f"audio only (kind is {cfg.kind!r})")
    if cfg.train.escalate_to is not None:
        escalated(cfg)  # its one-line errors now, not after the first model is trained
    if cfg.train.crossfit_folds < 2:
        raise ConfigError(f"train.crossfit_folds: must be >= 2, got {cfg.train.crossfit_folds}")
    if not 0 < cfg.train.holdout_fraction < 1:
        raise ConfigError("train.holdout_fraction: must be in (0, 1)")
    if not cfg.kafka.input_topics:
        raise ConfigError("kafka.input_topics: needs at least one topic")
    if not 0 <= cfg.metrics.port <= 65535:
        raise ConfigError(f"metrics.port: must be in 0-65535 (0 = off), got {cfg.metrics.port}")
    if not cfg.metrics.host.strip():
        raise ConfigError("metrics.host: must not be empty (127.0.0.1, 0.0.0.0, ::, or a host name)")
    return cfg


ESCALATE_SECTIONS = ("audio", "model", "train", "alerts")  # what train.escalate_to may override


def merge_dicts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` overridden by ``b``: mappings merged key by key, except model ``params`` and
    ``score_weights`` and train ``escalate_to`` (each is one setting), which ``b`` replaces whole, as
    it does lists and values."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        deep = isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("params", "score_weights",
                                                                                  "escalate_to")
        out[k] = merge_dicts(out[k], v) if deep else copy.deepcopy(v)
    return out


def escalated(cfg: Config) -> Config | None:
    """The config ``train.escalate_to`` makes of ``cfg`` (None when it is unset): a ConfigError naming
    ``train.escalate_to`` for anything it could not train."""
    over = cfg.train.escalate_to
    if over is None:
        return None
    if cfg.kind != "audio":
        raise ConfigError(f"train.escalate_to: the hearing check that decides it is audio only (kind is {cfg.kind!r})")
    if not 0 < cfg.train.escalate_below <= 1:
        raise ConfigError(f"train.escalate_below: a hearing-check ROC-AUC in (0, 1], got {cfg.train.escalate_below}")
    if not cfg.train.hearing_check:
        raise ConfigError("train.escalate_to: needs train.hearing_check: true (the check decides it)")
    bad = sorted(set(over) - set(ESCALATE_SECTIONS))
    if bad:
        raise ConfigError(f"train.escalate_to.{bad[0]}: not a section it may override ({', '.join(ESCALATE_SECTIONS)})")
    d = merge_dicts({k: v for k, v in cfg.to_dict().items() if k != "kind"}, over)
    d["kind"] = cfg.kind
    d["train"]["escalate_to"] = None  # one step, no chains
    try:
        out = from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"train.escalate_to: {e}") from None
    if out.audio.sample_rate != cfg.audio.sample_rate:
        raise ConfigError(f"train.escalate_to.audio.sample_rate: must stay {cfg.audio.sample_rate} (streams and "
                          "training audio come at one rate)")
    return out


def check_topic(name: str, key: str) -> str:
    if name in (".", "..") or not _TOPIC.match(name):
        raise ConfigError(f"{key}: invalid topic name {name!r} (1-249 characters of a-z A-Z 0-9 . _ -)")
    return name


def check_bootstrap(value: str, key: str = "kafka.bootstrap_servers") -> str:
    """``host:port[,host:port...]`` (ConfigError naming ``key`` otherwise)."""
    parts = [p.strip() for p in str(value).split(",")]
    for p in parts:
        m = _HOST_PORT.match(p)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise ConfigError(f"{key}: expected host:port[,host:port...], got {value!r}")
    return ",".join(parts)


def _validate_kafka(k: KafkaConfig) -> None:
    if k.bootstrap_servers is not None:
        check_bootstrap(k.bootstrap_servers)
    if not 0 <= k.embedded_port <= 65535:
        raise ConfigError(f"kafka.embedded_port: must be in 0-65535 (0 = any free port), got {k.embedded_port}")
    if not k.group_id.strip():
        raise ConfigError("kafka.group_id: must not be empty")
    for i, t in enumerate(k.input_topics):
        check_topic(t, f"kafka.input_topics[{i}]")
    if len(set(k.input_topics)) != len(k.input_topics):
        raise ConfigError("kafka.input_topics: a topic is listed twice")
    check_topic(k.alert_topic, "kafka.alert_topic")
    check_topic(k.dead_letter_topic, "kafka.dead_letter_topic")
    for key, t in (("kafka.dead_letter_topic", k.dead_letter_topic), ("kafka.alert_topic", k.alert_topic)):
        if t in k.input_topics:
            raise ConfigError(f"{key}: {t!r} is also an input topic (the daemon would consume its own output)")
    if k.alert_topic == k.dead_letter_topic:
        raise ConfigError(f"kafka.dead_letter_topic: {k.dead_letter_topic!r} is also the alert topic")
    hb, st = k.heartbeat_interval_ms, k.session_timeout_ms
    if hb is not None and st is not None and hb >= st:
        raise ConfigError(f"kafka.heartbeat_interval_ms: must be < kafka.session_timeout_ms ({st}), got {hb}")


def check_topics_across(cfgs: dict[str, Config]) -> None:
    """No config may publish (alerts, dead letters) to a topic another config consumes (ConfigError)."""
    inputs = {t: name for name, c in cfgs.items() for t in c.kafka.input_topics}
    for name, c in cfgs.items():
        for key in ("alert_topic", "dead_letter_topic"):
            t = getattr(c.kafka, key)
            if t in inputs:
                raise ConfigError(f"kafka.{key}: {t!r} of {name} is an input topic of {inputs[t]} "
                                  f"(the daemon would consume its own output)")


# Sections one daemon process shares between its pipelines (one consumer, one worker, one metrics
# endpoint, one log); the topics of each config are its own.
_PER_PIPELINE_KAFKA = {"input_topics", "alert_topic", "dead_letter_topic"}


def check_shared_sections(cfgs: dict[str, Config]) -> None:
    """Several configs in one process must agree on everything they share (ConfigError)."""
    items = list(cfgs.items())
    (first_name, first), rest = items[0], items[1:]
    for name, cfg in rest:
        for section in ("kafka", "worker", "metrics", "logging"):
            a, b = dataclasses.asdict(getattr(first, section)), dataclasses.asdict(getattr(cfg, section))
            for k in a:
                if section == "kafka" and k in _PER_PIPELINE_KAFKA:
                    continue
                if a[k] != b[k]:
                    raise ConfigError(f"{section}.{k}: differs between {first_name} ({a[k]!r}) and {name} "
                                      f"({b[k]!r}); one process shares its {section} settings")
    check_topics_across(cfgs)


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def from_dict(data: dict[str, Any] | None) -> Config:
    return validate(_build(Config, data or {}, ""))


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"config file {p}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {p}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    return from_dict(data)
