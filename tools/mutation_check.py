"""Break one rule at a time and check that a named test fails (issue 8, item 7).

    python tools/mutation_check.py [--only NAME] [--list]

Each mutation edits one source file in place, runs the tests that guard it, and restores the
file. A mutation *survives* when its tests still pass: that is a hole in the suite. Prints one
line per mutation and exits 1 if any survived. Takes about 10 minutes (broker tests included).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T = "tests/"

# name: (file, old text, new text, tests that must fail)
MUTATIONS = {
    "cooldown ignored (offline)": ("streamad/alerts.py", "starts[i] <= ev.end + self.cooldown_s",
                                   "starts[i] <= ev.end", [T + "test_alerts.py"]),
    "cooldown ignored (live)": ("streamad/alerts.py", "start > ev.end + self.rule.cooldown_s", "start > ev.end",
                                [T + "test_alerts.py"]),
    "k-of-n replaced by max (offline)": ("streamad/alerts.py", "np.sort(view, axis=1)[:, n - k]",
                                         "view.max(axis=1)", [T + "test_alerts.py"]),
    "k-of-n replaced by max (live)": ("streamad/alerts.py", "sorted(self.recent, reverse=True)[r.min_windows - 1]",
                                      "max(self.recent)", [T + "test_alerts.py"]),
    "threshold per minute": ("streamad/calibrate.py", "self.hop_s / 3600.0", "self.hop_s / 60.0",
                             [T + "test_calibrate.py"]),
    "no clustering correction": ("streamad/calibrate.py", "theta = min(1.0, max(0.1, n_clu / n_exc)) if n_exc else 1.0",
                                 "theta = 1.0", [T + "test_calibrate.py"]),
    "no clamp at the largest held-back score": (
        "streamad/calibrate.py", "self.threshold = max(tail, top + 1e-9 * max(1.0, abs(top)))",
        "self.threshold = tail", [T + "test_calibrate.py"]),
    "no open-event hold in the commit rule": (
        "streamad/daemon/pipeline.py", "st.hold = _min_offsets(w.sources, *st.context)", "st.hold = {}",
        [T + "test_daemon_commit.py::test_kill_inside_an_open_event_keeps_one_alert_id"]),
    "resumed checkpoint ignored": ("streamad/models/gmgan.py", 'if ck.get("n_train") == len(X):', "if False:", [T + "test_models.py::test_gmgan_checkpoint_resume_matches_uninterrupted"]),
    "spectrogram shows channel 0 in every row": (
        "streamad/windows/series.py", 'per_row = power[:, k["chan"]]', 'per_row = power[:, torch.zeros_like(k["chan"])]',
        [T + "test_series_frontend.py::test_spectrogram_rows_match_scipy_stft_per_channel"]),
    "spectrogram without window function": (
        "streamad/windows/series.py", 'frames.permute(0, 3, 1, 2) * k["hann"]', "frames.permute(0, 3, 1, 2) * 1.0",
        [T + "test_series_frontend.py::test_spectrogram_rows_match_scipy_stft_per_channel"]),
    "stereo summed instead of averaged": ("streamad/io/codecs.py", "mono = x.mean(axis=1)", "mono = x.sum(axis=1)",
                                          [T + "test_codecs.py"]),
    "dead letter loses its key": ("streamad/io/deadletter.py", "return record.key, record.value, headers",
                                  "return None, record.value, headers",
                                  [T + "test_daemon_integration.py::test_malformed_chunk_goes_to_dead_letter_and_daemon_goes_on"]),
    "dead letter loses the original headers": (
        "streamad/io/deadletter.py", "headers = list(record.headers or []) + [", "headers = [",
        [T + "test_daemon_integration.py::test_malformed_chunk_goes_to_dead_letter_and_daemon_goes_on"]),
    "dead letter with an inexact source": (
        "streamad/io/deadletter.py", '{record.partition}/{record.offset}"', '{record.partition}/{record.offset + 1}"',
        [T + "test_daemon_integration.py::test_malformed_chunk_goes_to_dead_letter_and_daemon_goes_on"]),
    "unacknowledged alert does not stop the daemon": (
        "streamad/daemon/ledger.py", 'raise DeliveryError(f"cannot publish to', 'log.warning(f"cannot publish to',
        [T + "test_daemon_commit.py::test_unacknowledged_alert_exits_1_and_a_restart_publishes_it"]),
    "idle streams never evicted": ("streamad/daemon/loop.py", "k, closed = p.evict_idle(self.idle_stream_s)",
                                   "k, closed = 0, []", [T + "test_daemon_commit.py::test_idle_stream_is_evicted_and_its_records_committed"]),
}


def run(name: str, spec: tuple) -> bool:
    """True when the mutation is killed (its tests fail)."""
    path, old, new, tests = spec
    f = ROOT / path
    src = f.read_text()
    if src.count(old) != 1:
        print(f"?? {name}: pattern not found exactly once in {path}", flush=True)
        return False
    f.write_text(src.replace(old, new))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                           cwd=ROOT, capture_output=True, text=True)
    finally:
        f.write_text(src)
    killed = r.returncode != 0
    print(f"{'killed  ' if killed else 'SURVIVED'} {name}  <- {' '.join(tests)}", flush=True)
    return killed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="run the mutations whose name contains this text")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    chosen = {k: v for k, v in MUTATIONS.items() if not a.only or a.only in k}
    if a.list:
        print("\n".join(chosen))
        return 0
    results = [run(k, v) for k, v in chosen.items()]
    print(f"{sum(results)} of {len(results)} mutations killed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
