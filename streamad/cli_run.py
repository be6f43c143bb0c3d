"""`streamad run`: configs and models checked, broker (embedded or given), metrics endpoint, the
daemon (or ``--processes N`` children of one consumer group), exit codes."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from streamad.cli import EXIT_ALERT_UNDELIVERED, EXIT_NO_BROKER, CliError, _bootstrap_arg, _load_config


def _run_configs(paths: list[str]):
    """The configs of one daemon process, checked together before anything starts."""
    from streamad.config import check_shared_sections
    from streamad.io.kafka import check_client_options

    cfgs = [_load_config(c) for c in paths]
    check_shared_sections(dict(zip(paths, cfgs)))
    check_client_options(cfgs[0].kafka.client)
    return cfgs


def _pipelines(a: argparse.Namespace, paths: list[str], cfgs: list):
    from streamad.daemon import Pipeline
    from streamad.model import AnomalyModel

    if a.model and len(cfgs) > 1:
        raise CliError("run: --model only with a single --config (set model.path in each config)")
    return [Pipeline(path, cfg, AnomalyModel.load(a.model or cfg.model.path, device=a.device or cfg.model.device))
            for path, cfg in zip(paths, cfgs)]


def _start_metrics(a: argparse.Namespace, first, pipes, bootstrap: str, kcfg):
    """The daemon with its telemetry, and the /healthz /readyz /metrics endpoint when a port is set."""
    from streamad.daemon import Daemon
    from streamad.daemon.health import HealthState, start_health_server
    from streamad.daemon.telemetry import Telemetry

    m = first.metrics
    if a.metrics_port is not None:
        if not 0 <= a.metrics_port <= 65535:
            raise CliError(f"run: --metrics-port must be in 0-65535 (0 = off), got {a.metrics_port}")
        m.port = a.metrics_port
    tel = Telemetry()
    health = HealthState(tel, m.stuck_after_s, m.ready_max_lag)
    daemon = Daemon(pipes, bootstrap, kcfg, first.worker.idle_stream_s, telemetry=tel, health=health)
    try:
        return start_health_server(m, health, tel), daemon
    except OSError as e:
        raise CliError(f"metrics.port: cannot listen on {m.host}:{m.port} ({e.strerror or e})") from None


def cmd_run(a: argparse.Namespace) -> int:
    from streamad.daemon.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: flat resident memory (daemon/memory.py)
    stop_early = {"sig": None}  # a SIGTERM while importing or loading models still means a clean exit 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: stop_early.update(sig=s))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload during start-up: the models being loaded are current
    from streamad.daemon import DeliveryError, setup_logging
    from streamad.daemon.supervisor import DaemonExit
    from streamad.io.kafka import BrokerTimeout, ensure_topics

    cfgs = _run_configs(a.config)
    a.bootstrap = _bootstrap_arg(a.bootstrap)
    setup_logging(a.log_level, a.log_format or cfgs[0].logging.format)
    if a.processes < 1:
        raise CliError(f"run: --processes must be >= 1, got {a.processes}")
    if a.processes > 1:
        return _run_processes(a, cfgs, lambda: stop_early["sig"])
    pipes = _pipelines(a, a.config, cfgs)
    first = pipes[0].cfg
    if first.worker.threads > 0:
        import torch

        torch.set_num_threads(first.worker.threads)
    k = first.kafka
    broker, bootstrap = _broker(a, k)
    try:
        topics = [t for p in pipes for t in p.cfg.kafka.input_topics + [p.cfg.kafka.alert_topic,
                                                                         p.cfg.kafka.dead_letter_topic]]
        try:
            ensure_topics(bootstrap, topics, k.partitions, k.client)
        except Exception as e:  # external clusters may forbid topic creation: the topics must exist then
            print(f"streamad: could not create topics ({e}); assuming they exist", file=sys.stderr)
        server, daemon = _start_metrics(a, first, pipes, bootstrap, k)
        if broker:  # supervised: restarted when it dies (its memory storage is gone: topics again)
            daemon.embedded = broker
            daemon.on_embedded_restart = lambda: ensure_topics(broker.bootstrap, topics, k.partitions, k.client)
        if a.model:
            daemon.reloader.model_override = {p.label: a.model for p in pipes}
        if a.print_alerts:
            daemon.on_alert = lambda al: print(json.dumps(al), flush=True)
        try:
            if stop_early["sig"] is not None:
                return 0
            if a.score_log:
                try:
                    daemon.score_log = open(a.score_log, "a", encoding="utf-8")
                except OSError as e:
                    raise CliError(f"run: --score-log {a.score_log}: {e.strerror or e}") from None
            return daemon.run(max_seconds=a.max_seconds)
        except DeliveryError as e:  # nothing past the failed alert was committed: a restart resumes there
            print(f"streamad: error: {e}; stopping without committing", file=sys.stderr)
            return EXIT_ALERT_UNDELIVERED
        except DaemonExit as e:  # no broker for too long, or the embedded broker died
            print(f"streamad: error: {e}", file=sys.stderr)
            return e.code
        except BrokerTimeout as e:  # no broker while starting
            print(f"streamad: error: {e} (kafka.broker_timeout_s = {k.broker_timeout_s:g})", file=sys.stderr)
            return EXIT_NO_BROKER
        finally:
            if daemon.score_log:
                daemon.score_log.close()
            if server:
                server.stop()
    finally:
        if broker:
            broker.stop()


def _broker(a: argparse.Namespace, k):
    """(embedded broker or None, bootstrap): the embedded broker when no cluster is configured."""
    from streamad.broker import EmbeddedBroker

    broker, bootstrap = None, a.bootstrap or k.bootstrap_servers
    if bootstrap is None:
        broker = EmbeddedBroker(port=k.embedded_port).start()
        bootstrap = broker.bootstrap
        print(f"streamad: embedded broker at {bootstrap} (for demos, tests and trials: it keeps every record in "
              "memory and stops serving a partition past ~30 000 record batches; set kafka.bootstrap_servers "
              "for a long-running service)", file=sys.stderr, flush=True)
    if (broker is not None or a.embedded_broker) and k.session_timeout_ms is None:
        k.session_timeout_ms, k.heartbeat_interval_ms = 2000, 600  # it holds joins for session/2
    return broker, bootstrap


def _run_processes(a: argparse.Namespace, cfgs: list, pending) -> int:
    """``--processes N``: N children of one consumer group (streamad/daemon/processes.py); the parent
    holds the embedded broker, when there is one, and restarts it as a single daemon would."""
    from streamad.daemon.processes import child_args, run_processes
    from streamad.daemon.supervisor import revive_embedded
    from streamad.io.kafka import ensure_topics

    k = cfgs[0].kafka
    broker, bootstrap = _broker(a, k)
    port = a.metrics_port if a.metrics_port is not None else cfgs[0].metrics.port
    topics = [t for c in cfgs for t in c.kafka.input_topics + [c.kafka.alert_topic, c.kafka.dead_letter_topic]]
    left = {"restarts": k.embedded_restarts}

    def tick() -> None:
        left["restarts"] = revive_embedded(broker, left["restarts"],
                                           lambda: ensure_topics(broker.bootstrap, topics, k.partitions, k.client))

    try:
        return run_processes(lambda i: child_args(a, i, bootstrap, port, broker is not None), a.processes,
                             pending=pending, tick=tick if broker else None)
    finally:
        if broker:
            broker.stop()
