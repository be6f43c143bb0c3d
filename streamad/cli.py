"""Command line: streamad {train,score,eval,run,replay,broker,bench,alerts,detectors,demo}."""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning, module="kafka")

EXIT_ALERT_UNDELIVERED = 1
EXIT_USAGE = 2
EXIT_NO_BROKER = 3  # no broker reachable for kafka.broker_timeout_s (run) / --broker-timeout (replay)
EXIT_BROKER_DIED = 4  # the embedded broker died and kafka.embedded_restarts is used up
EXIT_INTERNAL = 5  # an unexpected error (a bug): the traceback is printed; not 1, which means an unacknowledged alert


class CliError(Exception):
    """Any user-facing error: printed as one line, exit code 2."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    from streamad.broker import BrokerError
    from streamad.config import ConfigError
    from streamad.io.files import InputError
    from streamad.kinds import DataError
    from streamad.model import ModelFileError
    from streamad.models.base import TrainingError

    return (CliError, ConfigError, InputError, ModelFileError, DataError, TrainingError, BrokerError)


def _load_config(path: str | None, kind: str | None = None):
    from streamad import config as C

    if path is None:
        return C.from_dict({"kind": kind} if kind else {})
    return C.load(path)


def _series_opts(a: argparse.Namespace) -> dict:
    split = lambda s: [c.strip() for c in s.split(",") if c.strip()] if s else None  # noqa: E731
    return {"time_column": getattr(a, "time_column", None), "value_columns": split(getattr(a, "value_columns", None)),
            "label_column": getattr(a, "label_column", None)}


def _add_series_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("numeric series (CSV / WFDB)")
    g.add_argument("--time-column", help="CSV column with timestamps (epoch seconds or ISO-8601)")
    g.add_argument("--value-columns", help="comma-separated CSV columns to use as channels (default: all numeric)")
    g.add_argument("--label-column", help="CSV column with 0/1 anomaly labels (series: evaluation only; "
                   "tabular: overrides tabular.label_column)")


# -- commands ---------------------------------------------------------------------
def cmd_broker(a: argparse.Namespace) -> int:
    from streamad.broker import EmbeddedBroker

    b = EmbeddedBroker(port=a.port).start()
    print(b.bootstrap, flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and b.proc and b.proc.poll() is None:
            time.sleep(0.2)
    finally:
        b.stop()
    return 0


def _writable_dir(path: str, what: str) -> None:
    """``path`` can be a directory this process writes: it is one, or the nearest existing folder
    above it is writable; else a one-line CliError now, before any work whose result would be lost."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{what} {path}: exists and is not a directory")
    q = p
    while not q.exists():
        q = q.parent
    if not q.is_dir() or not os.access(q, os.W_OK | os.X_OK):
        raise CliError(f"{what} {path}: cannot write there ({q} is not a writable directory)")


def _ebrs(text: str) -> list[float]:
    """``--ebr`` "-6,0,6" -> [-6.0, 0.0, 6.0]; a one-line CliError for anything else."""
    try:
        out = [float(x) for x in text.split(",")]
    except ValueError:
        out = []
    if not out or not all(math.isfinite(x) and -60 <= x <= 60 for x in out):
        raise CliError(f"eval: --ebr must be comma-separated numbers of dB in -60..60, got {text!r}")
    return out


def train_config(a: argparse.Namespace):
    """The config ``streamad train`` trains with: ``--config`` with ``--detector``, ``--steps`` and ``--seed``
    applied. A detector asked for by name is the one trained, in every place: the config's
    ``train.escalate_to`` is dropped with it (a one-line note on stderr)."""
    cfg = _load_config(a.config)
    if a.detector:
        if a.detector != cfg.model.detector and cfg.train.escalate_to is not None:
            print(f"streamad: note: train.escalate_to is not used with --detector {a.detector}", file=sys.stderr)
            cfg.train.escalate_to = None
        cfg.model.detector = a.detector
    if a.steps is not None:
        cfg.model.params["steps"] = a.steps
    if a.seed is not None:
        cfg.train.seed = a.seed
    return cfg


def cmd_train(a: argparse.Namespace) -> int:
    from streamad.kinds import kind_of
    from streamad.train import load_recordings, train_model

    cfg = train_config(a)
    _writable_dir(a.out, "train: --out")
    t0 = time.monotonic()
    recs, labelled = kind_of(cfg).labelled(load_recordings(cfg, a.normal, **_series_opts(a)))
    if a.anomalies:
        labelled += load_recordings(cfg, a.anomalies, **_series_opts(a))
    model = train_model(cfg, recs, a.out, show_progress=not a.quiet, device=a.device, anomalies=labelled or None)
    info = {"model_dir": str(a.out), "model_version": model.version, "detector": model.name,
            "threshold": model.threshold, "wall_s": round(time.monotonic() - t0, 1), **model.meta["training"]}
    h = model.calibration.holdout if model.calibration is not None else {}
    info.update({k: h[k] for k in ("threshold_before_seam", "seam_max_score") if k in h})  # train.seam_windows
    if "hearing_check" in h:  # audio: how well the model hears generic sounds added to its own place
        info["hearing_check_auc"] = h["hearing_check"]["synthetic_auc"]
    if "weights_choice" in h:  # model.score_weights_choice: which set was kept, and why
        info["score_weights"] = {k: w for k, w in model.calibration.weights.items() if w}
        info["weights_choice"] = {k: h["weights_choice"][k] for k in ("chosen", "synthetic_auc")}
    print(json.dumps(info))
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from streamad.scoring import score_files

    for rec in score_files(a.model, a.files, device=a.device, **_series_opts(a)):
        sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    if a.series:
        from streamad.evaluation.series_files import eval_series_files

        res = eval_series_files(a.model, a.series, nab_out=a.nab_out, device=a.device, row_rule=a.row_rule,
                                beats_from_s=a.beats_from, **_series_opts(a))
    else:
        from streamad.evaluation.audio import eval_audio

        if not (a.normal and a.events):
            raise CliError("eval: audio evaluation needs --normal DIR and --events DIR (or --series FILE...)")
        ebrs = _ebrs(a.ebr)
        _writable_dir(a.out, "eval: --out")
        res = eval_audio(a.model, a.normal, a.events, ebrs=ebrs, seed=a.seed, out=a.out, device=a.device,
                         top_alerts=a.top)
    print(json.dumps(res, indent=2))
    return 0


def _bootstrap_arg(value: str | None) -> str | None:
    from streamad.config import check_bootstrap

    return None if value is None else check_bootstrap(value, "--bootstrap")


def cmd_run(a: argparse.Namespace) -> int:
    from streamad.cli_run import cmd_run as run

    return run(a)


def cmd_replay(a: argparse.Namespace) -> int:
    from streamad.io.kafka import BrokerTimeout
    from streamad.io.replay import replay_files

    def say(msg: str) -> None:
        print(msg if msg.startswith("replay ") else f"streamad: {msg}", file=sys.stderr, flush=True)

    try:
        replay_files(_bootstrap_arg(a.bootstrap), a.topic, a.stream_id, a.files, a.speed, a.broker_timeout, say,
                     audio={"sample_rate": a.sample_rate, "chunk_s": a.chunk_s, "dtype": a.dtype,
                            "start_ts": a.start_ts},
                     series={"batch": a.batch, "start_ts": a.start_ts, **_series_opts(a)})
    except BrokerTimeout as e:
        print(f"streamad: error: {e} (--broker-timeout {a.broker_timeout:g})", file=sys.stderr)
        return EXIT_NO_BROKER
    return 0


def cmd_alerts(a: argparse.Namespace) -> int:
    from streamad.io.kafka import BrokerTimeout
    from streamad.io.tail import tail_alerts

    if a.max_seconds is not None and not (math.isfinite(a.max_seconds) and a.max_seconds > 0):
        raise CliError(f"alerts: --max-seconds must be a number of seconds > 0, got {a.max_seconds}")
    try:
        tail_alerts(_bootstrap_arg(a.bootstrap), a.topic, from_beginning=a.from_beginning, max_seconds=a.max_seconds)
    except KeyboardInterrupt:
        pass
    except BrokerTimeout as e:
        print(f"streamad: error: {e}", file=sys.stderr)
        return EXIT_NO_BROKER
    return 0


def cmd_detectors(a: argparse.Namespace) -> int:
    from streamad.models.registry import DETECTORS

    sys.stdout.write("".join(f"{name}\n" for name in sorted(DETECTORS)))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from streamad.demo import run_demo

    return run_demo(a)


# -- parser -----------------------------------------------------------------------
def _detector_names() -> list[str]:
    from streamad.models.registry import DETECTORS

    return sorted(DETECTORS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamad", description="Streaming anomaly monitor for sound and signals.")
    from streamad import __version__

    p.add_argument("--version", action="version", version=f"streamad {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("broker", help="run the embedded Kafka-compatible broker until interrupted")
    s.add_argument("--port", type=int, default=0, help="port (default: a free one); the address is printed")
    s.set_defaults(func=cmd_broker)

    s = sub.add_parser("train", help="train and calibrate a model on normal recordings")
    s.add_argument("--config", required=True,
                   help="YAML config (configs/audio.yaml, sensor.yaml, heartrate.yaml, tabular.yaml)")
    s.add_argument("--normal", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="normal recordings / tables (tabular: rows labelled 1 in tabular.label_column are "
                        "labelled anomalies)")
    s.add_argument("--anomalies", nargs="+", metavar="DIR_OR_FILE",
                   help="labelled anomalies: every window / row of these files is anomalous (for deepsad, "
                        "hsc, bce; unsupervised detectors ignore them)")
    s.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write")
    s.add_argument("--detector", help="override model.detector: " + ", ".join(_detector_names())
                   + " (`streamad detectors` lists them)")
    s.add_argument("--steps", type=int, help="override model.params.steps (training length of the network "
                   "detectors: gmgan, ganomaly, cae, ...; the frame mixtures have none)")
    s.add_argument("--seed", type=int, help="override train.seed")
    s.add_argument("--device", help="cpu, cuda, cuda:N (default: config model.device)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_series_args(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="score files; one JSON object per window on stdout")
    s.add_argument("--model", required=True, metavar="MODEL_DIR")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--device", default="cpu", help="scoring device (default cpu, deterministic)")
    _add_series_args(s)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("eval", help="evaluate a model: events mixed into normal audio, or labelled series")
    s.add_argument("--model", required=True, metavar="MODEL_DIR")
    s.add_argument("--normal", metavar="DIR", help="held-out normal recordings (audio)")
    s.add_argument("--events", metavar="DIR", help="event recordings to mix in (audio)")
    s.add_argument("--ebr", default="-6,0,6", help="event-to-background ratios in dB (default -6,0,6)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--top", type=int, default=3, help="residual PNGs for the top N alerts")
    s.add_argument("--series", nargs="+", metavar="FILE", help="labelled CSV/WFDB series to evaluate")
    s.add_argument("--nab-out", metavar="DIR", help="also write NAB detection CSVs here (series)")
    s.add_argument("--row-rule", default="cover", choices=("cover", "cover_min", "end", "center", "skab"),
                   help="series: how window scores map to rows (skab = SKAB leaderboard notebooks' rule)")
    s.add_argument("--beats-from", type=float, default=0.0, metavar="S",
                   help="WFDB: evaluate beats from this many seconds into the record (skip the training part)")
    s.add_argument("--out", default="eval-out", metavar="DIR", help="where PNGs go (default eval-out)")
    s.add_argument("--device", default="cpu")
    _add_series_args(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("run", help="run the daemon: consume, score, publish alerts")
    s.add_argument("--config", required=True, action="append", help="YAML config; repeat to run several pipelines")
    s.add_argument("--model", help="model directory (default: model.path from the config)")
    s.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    s.add_argument("--device", help="override model.device")
    s.add_argument("--print-alerts", action="store_true", help="also print alerts as JSON lines on stdout")
    s.add_argument("--max-seconds", type=float, help="stop after this long (testing)")
    s.add_argument("--score-log", metavar="FILE", help="append one JSON line per scored window (audit trail)")
    s.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    s.add_argument("--log-format", choices=("text", "json"), help="override logging.format (default: text)")
    s.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve /healthz /readyz /metrics on this port (overrides metrics.port; 0 = off)")
    s.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run N daemon processes of one consumer group (one per core); process i serves "
                        "metrics on port+i and writes --score-log FILE.i")
    s.add_argument("--embedded-broker", action="store_true", help=argparse.SUPPRESS)  # set by --processes
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("replay", help="publish audio files as a live chunk stream")
    s.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    s.add_argument("--topic", required=True)
    s.add_argument("--stream-id", required=True)
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = as fast as possible")
    s.add_argument("--chunk-s", type=float, default=0.1, help="seconds of audio per record")
    s.add_argument("--sample-rate", type=int, default=16000, help="resample to this rate (the model's)")
    s.add_argument("--dtype", choices=("int16", "float32"), default="int16")
    s.add_argument("--start-ts", type=float, help="capture time of the first sample (default: now for audio, "
                   "the file's own timestamps for series)")
    s.add_argument("--batch", type=int, default=1, help="series: readings per record (>1: compact batch form)")
    s.add_argument("--broker-timeout", type=float, default=300.0, metavar="S",
                   help="wait up to S seconds for an unreachable broker (retrying with backoff), then exit 3")
    _add_series_args(s)
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("alerts", help="tail an alert topic as a readable table (time, stream, score, duration, evidence)")
    s.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    s.add_argument("--topic", required=True)
    s.add_argument("--from-beginning", action="store_true", help="show the records already there, then follow")
    s.add_argument("--max-seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    s.set_defaults(func=cmd_alerts)

    s = sub.add_parser("detectors", help="list the registered detectors, one name per line")
    s.set_defaults(func=cmd_detectors)

    from streamad.benchmarks import bench

    s = sub.add_parser("bench", help="benchmark: naive loop vs the daemon, backlog and live sweep, on one machine",
                       description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(s)
    s.set_defaults(func=bench.run)

    s = sub.add_parser("demo", help="broker + training + daemon + replay with inserted events, then a summary")
    s.add_argument("--ambient", default=None, help="normal recordings (default ../shared/data/audio/ambient)")
    s.add_argument("--events", nargs="+", default=None,
                   help="event recordings (default glass-sfx and babycry from ../shared/data/audio)")
    s.add_argument("--config", default=None, help="audio config (default configs/audio.yaml if present)")
    s.add_argument("--speed", type=float, default=4.0, help="replay speed (x real time)")
    s.add_argument("--n-events", type=int, default=12, help="events to insert")
    s.add_argument("--ebr", type=float, default=0.0, help="event-to-background ratio of inserted events (dB)")
    s.add_argument("--steps", type=int, default=None,
                   help="training steps (default: config; ignored by detectors that train without steps)")
    s.add_argument("--work", default="demo-out", help="where the demo model and report go")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("KMP_WARNINGS", "0")
    try:
        return args.func(args)
    except _expected_errors() as e:
        print(f"streamad: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - anything else is a bug: its traceback, and an exit code of its own
        import traceback

        traceback.print_exc()
        print(f"streamad: internal error (a bug; please report the traceback above): exit {EXIT_INTERNAL}",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
