"""``streamad run --processes N``: N daemon processes, members of one consumer group, on one machine.

One Python process scores on one interpreter: its poll loop (record parsing, decoding,
buffering) and its scoring worker share one interpreter lock, so one process uses little more
than one core. N processes of the same group split the input partitions between them (Kafka's
group protocol, exactly as N machines would): within a machine, run one per core or so; across
machines, start more processes with the same ``kafka.group_id``. More processes than input
partitions leave the extra ones idle (standbys).

The parent starts the children (``python -m streamad.cli run`` with the same arguments), forwards
SIGTERM/SIGINT and SIGHUP (model reload) to them, and exits with the worst child exit code once all
have exited; with the embedded broker it holds the broker and restarts it as one daemon would. When one
child fails on its own (a non-zero exit), the parent stops the others and exits with the failed
child's code, so a supervisor (systemd ``Restart=on-failure``) restarts the whole set and no
member is silently missing. Per child ``i`` (0-based): ``--metrics-port P`` becomes ``P + i`` and
``--score-log FILE`` becomes ``FILE.i``.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from typing import Callable

log = logging.getLogger("streamad.processes")


def exit_code(rc: int) -> int:
    """A child's return code as a shell would report it (killed by signal N -> 128 + N)."""
    return 128 - rc if rc < 0 else rc


def child_args(a, i: int, bootstrap: str, metrics_port: int, embedded: bool) -> list[str]:
    """``streamad run`` arguments of child ``i`` from the parent's parsed arguments."""
    out = [x for c in a.config for x in ("--config", c)] + ["--bootstrap", bootstrap, "--log-level", a.log_level]
    for flag, val in (("--model", a.model), ("--device", a.device), ("--log-format", a.log_format),
                      ("--max-seconds", a.max_seconds), ("--score-log", a.score_log and f"{a.score_log}.{i}"),
                      ("--metrics-port", metrics_port and metrics_port + i)):
        if val is not None:
            out += [flag, str(val)]
    return out + ["--print-alerts"] * a.print_alerts + ["--embedded-broker"] * embedded


def run_processes(argv_for: Callable[[int], list[str]], n: int, poll_s: float = 0.2,
                  pending: Callable[[], int | None] = lambda: None, tick: Callable[[], None] | None = None) -> int:
    """Run ``n`` children ``python -m streamad.cli run <argv_for(i)>``; the worst exit code.

    ``pending()``: a SIGTERM/SIGINT that reached the parent before this started (the embedded broker
    was starting): no child is started, exit 0. SIGHUP is passed on to the children (model reload).
    ``tick()``, once per poll, may raise ``DaemonExit`` (the embedded broker died for good): the
    children are stopped and its code returned. Children stopped by the parent's own SIGTERM/SIGINT
    before they could install their handlers count as clean stops."""
    from streamad.daemon.supervisor import DaemonExit

    procs: list[subprocess.Popen] = []
    state: dict = {"stopping": False, "first_failure": None, "signal": None}

    def stop_all(sig: int = signal.SIGTERM) -> None:
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass

    def on_signal(sig: int, _frame) -> None:
        state["stopping"], state["signal"] = True, sig
        stop_all(sig)

    def on_hup(_sig: int, _frame) -> None:
        log.info("SIGHUP: passed on to the %d daemon processes (model reload)", len(procs))
        stop_all(signal.SIGHUP)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    old[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    state["signal"] = state["signal"] or pending()  # read after our handlers are in place: none is missed
    state["stopping"] = state["signal"] is not None
    try:
        for i in range(n):
            if state["stopping"]:
                break
            procs.append(subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", *argv_for(i)]))
        if procs:
            log.info("started %d daemon processes: %s", len(procs), ", ".join(str(p.pid) for p in procs))
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.returncode not in (None, 0)]
            if failed and not state["stopping"]:
                log.error("process %d exited with %d: stopping the others", failed[0].pid, failed[0].returncode)
                state["stopping"], state["first_failure"] = True, exit_code(failed[0].returncode)
                stop_all()
            if tick is not None and not state["stopping"]:
                try:
                    tick()
                except DaemonExit as e:
                    log.error("%s: stopping the daemon processes", e)
                    print(f"streamad: error: {e}", file=sys.stderr, flush=True)
                    state["stopping"], state["first_failure"] = True, e.code
                    stop_all()
            time.sleep(poll_s)
    finally:
        stop_all()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, h in old.items():
            signal.signal(s, h)
    if state["first_failure"] is not None:  # the others were stopped because of it
        return state["first_failure"]
    stopped_by = state["signal"]
    codes = [0 if stopped_by is not None and p.returncode == -stopped_by else exit_code(p.returncode) for p in procs]
    return max(codes) if codes else 0
