"""The detector zoo against the papers' tables: one command for the whole table.

    python -m streamad.benchmarks.zoo [kdd99 arrhythmia mnist audio] [--seeds 0,1,2]
        [--detectors alad,dagmm,...] [--quick] [--data ../shared/data] [--out docs/zoo]
        [--doc docs/DETECTORS.md] [--threads 1] [--add-seeds] [--report-only]

With no dataset named, all four run. Every run is seeded; results go to OUT/results.json
(merged with earlier runs of other datasets) and docs/DETECTORS.md is regenerated from
them, with the published number beside each measured one. ``--quick`` is a smoke run
(one seed, a few steps, small subsets) written to a temporary directory. ``--add-seeds`` runs
more seeds of a dataset already in the results and appends them to its rows. While such a
re-run (``--detectors`` or ``--add-seeds``) of a dataset already in the results goes on, each
finished run is written to OUT/results.DATASET.partial.json; the rows are merged into results.json
when the dataset is done (an interrupted re-run leaves its runs in the side file).

Protocols (see :mod:`streamad.benchmarks.zoo_data`): KDD Cup 99 and Arrhythmia as Zong et
al. (DAGMM) / Zenati et al. (ALAD): precision / recall / F1 of the anomaly class with the
threshold at the score quantile that flags the known anomaly ratio (20 % / 15 %);
one-class MNIST as Ruff et al. (Deep SVDD): ROC-AUC per digit, mean over digits; audio:
the held-out evaluation of ``streamad eval`` (``streamad.benchmarks.audio_eval``, one
model for one place), mean ROC-AUC over EBR -6/0/+6 dB and the two event sets. Rows
marked +OE train with labelled anomalies (outlier exposure).
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from streamad.benchmarks import zoo_data as D
from streamad.benchmarks import zoo_specs as S
from streamad.benchmarks.zoo_report import write_report
from streamad.calibrate import Calibration
from streamad.demo import default_data_dir
from streamad.models.base import Detector
from streamad.models.registry import create
from streamad.progress import bar

DATASETS = ("kdd99", "arrhythmia", "mnist", "audio")
AUDIO_PROTOCOL = ("streamad eval on the one-place split of audio/ambient: every 4th recording (16 x 10 s) "
                  "held out, the detector trained on the other 48 with the package's patch front end (32 mel x "
                  "32 frames, 1 s windows, threshold calibrated on held-back training windows); baby-cry and "
                  "glass-sfx events mixed into the held-out recordings at -6/0/+6 dB; window ROC-AUC, mean over "
                  "EBR; false alerts counted on the pure held-out audio (160 s: one false alert = 22.5 /h). "
                  "Not the per-scene benchmark of docs/EVAL.md")


# -- one fit / score ----------------------------------------------------------------
def benchmark_score(det: Detector, comps: dict[str, np.ndarray], X_train: torch.Tensor) -> np.ndarray:
    """The paper's score component, or (no ``primary``) every component standardised on
    the training rows and averaged, as the calibrator does in production."""
    if det.primary:
        return comps[det.primary]
    cal = Calibration.fit_components(det.score_components(X_train[:5000]))
    return cal.combine(comps)


def time_batch(det: Detector, X: torch.Tensor, reps: int = 3) -> float:
    """Median wall time (ms) of scoring one batch (after one warm-up call)."""
    det.score_components(X)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        det.score_components(X)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def stratified_cap(X: torch.Tensor, y: np.ndarray, cap: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    if not cap or len(X) <= cap:
        return X, y
    rng = np.random.default_rng(seed + 1000)
    idx = np.concatenate([rng.choice(np.nonzero(y == c)[0], int(round(cap * np.mean(y == c))), replace=False)
                          for c in (0, 1)])
    idx.sort()
    return X[idx], y[idx]


def fit_score(spec: S.Spec, split: D.Split, seed: int, batch: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    det = create(spec.detector, spec.params)
    y_train = split.y_train if spec.exposure else None
    t0 = time.monotonic()
    det.fit(split.X_train, y_train, seed=seed)
    fit_s = time.monotonic() - t0
    X_test, y_test = stratified_cap(split.X_test, split.y_test, spec.test_cap, seed)
    t0 = time.monotonic()
    comps = det.score_components(X_test)
    score_s = time.monotonic() - t0
    normal_train = split.X_train if y_train is None else split.X_train[y_train == 0]
    scores = benchmark_score(det, comps, normal_train)
    return {"scores": scores, "y": y_test, "fit_s": fit_s, "score_s": score_s,
            "infer_ms": time_batch(det, X_test[:batch])}


def prf_at_ratio(y: np.ndarray, scores: np.ndarray, ratio: float) -> dict[str, float]:
    thr = np.percentile(scores, 100 * (1 - ratio))
    p, r, f, _ = precision_recall_fscore_support(y, (scores >= thr).astype(int), average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "auc": float(roc_auc_score(y, scores))}


# -- bookkeeping ----------------------------------------------------------------------
class Table:
    """Per-row lists of per-seed values, saved after every run."""

    def __init__(self, name: str, protocol: str, metric: str, save: Callable[[], None]):
        self.d: dict[str, Any] = {"protocol": protocol, "metric": metric, "rows": {}, "started": time.time()}
        self.save = save

    def add(self, spec: S.Spec, values: dict[str, float], extra: dict[str, Any] | None = None) -> None:
        row = self.d["rows"].setdefault(spec.row, {"detector": spec.detector, "params": spec.params,
                                                   "note": spec.note, "test_cap": spec.test_cap,
                                                   "exposure": spec.exposure, "values": {}})
        for k, v in values.items():
            row["values"].setdefault(k, []).append(v)
        for k, v in (extra or {}).items():
            row.setdefault(k, []).append(v)
        self.save()

    def finish(self) -> dict[str, Any]:
        self.d["wall_s"] = round(time.time() - self.d.pop("started"), 1)
        for row in self.d["rows"].values():
            row["summary"] = {k: _mean_std(v) for k, v in row["values"].items()}
        return self.d


def _mean_std(v: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(v)), "std": float(statistics.pstdev(v)) if len(v) > 1 else 0.0, "n": len(v)}


# -- datasets ---------------------------------------------------------------------------
def run_tabular(name: str, loader, specs: list[S.Spec], seeds: list[int], ratio: float, data: Path,
                batch: int, table: Table) -> None:
    with bar(len(seeds) * len(specs), name, "run") as pb:
        for seed in seeds:
            split = loader(data, seed)
            for spec in specs:
                pb.set_postfix_str(f"{spec.row} seed {seed}")
                r = fit_score(spec, split, seed, batch)
                table.add(spec, prf_at_ratio(r["y"], r["scores"], ratio),
                          {"fit_s": round(r["fit_s"], 2), "score_s": round(r["score_s"], 2),
                           "infer_ms_batch": round(r["infer_ms"], 3)})
                pb.update(1)
    table.d["batch"] = batch


def run_mnist(specs: list[S.Spec], seeds: list[int], data: Path, digits: list[int], n_train: int,
              n_test: int, table: Table) -> None:
    per: dict[str, dict[int, list[float]]] = {}
    with bar(len(seeds) * len(digits) * len(specs), "mnist", "run") as pb:
        for seed in seeds:
            aucs: dict[str, list[float]] = {}
            fit_s: dict[str, float] = {}
            for digit in digits:
                plain = D.mnist(data, digit, seed, n_train, n_test)
                oe = D.mnist(data, digit, seed, n_train, n_test, S.MNIST_N_EXPOSURE) \
                    if any(s.exposure for s in specs) else None
                for spec in specs:
                    pb.set_postfix_str(f"{spec.row} digit {digit} seed {seed}")
                    r = fit_score(spec, oe if spec.exposure else plain, seed, 128)
                    auc = float(roc_auc_score(r["y"], r["scores"]))
                    aucs.setdefault(spec.row, []).append(auc)
                    per.setdefault(spec.row, {}).setdefault(digit, []).append(auc)
                    fit_s[spec.row] = fit_s.get(spec.row, 0.0) + r["fit_s"]
                    table.d.setdefault("last_infer_ms", {})[spec.row] = round(r["infer_ms"], 3)
                    pb.update(1)
            for spec in specs:
                table.add(spec, {"auc": float(np.mean(aucs[spec.row]))},
                          {"fit_s": round(fit_s[spec.row], 1),
                           "infer_ms_batch": table.d["last_infer_ms"][spec.row]})
    for row, d in per.items():
        table.d["rows"][row]["per_digit"] = {str(k): float(np.mean(v)) for k, v in sorted(d.items())}
    table.d.update(batch=128, digits=digits, n_train=n_train, n_test_per_class=n_test)


def exposure_recordings(data: Path, sr: int, backgrounds: list, seed: int) -> list:
    """Event recordings from audio/events (never the test sets' glass / baby cry) mixed into
    training background at a random EBR in {-6, 0, 6} dB, cropped to the event (at least
    one window): every window of these is a labelled anomaly."""
    from streamad.evaluation.mixing import mix_event, trim_event
    from streamad.io.files import list_audio
    from streamad.train import Recording

    rng = np.random.default_rng(seed)
    out = []
    for f in list_audio([data / "audio" / "events"]):
        ev = trim_event(cached_audio(f, sr), sr, 4.0)
        bg = backgrounds[rng.integers(len(backgrounds))].signal
        if len(ev) < sr // 50 or len(bg) < 3 * sr:
            continue
        ev = ev[: len(bg) - 2 * sr]
        start = int(rng.integers(sr // 2, len(bg) - len(ev) - sr // 2))
        mix = mix_event(bg, ev, start, float(rng.choice([-6.0, 0.0, 6.0])))
        a = max(0, min(start, start + len(ev) - sr))  # at least one full window, overlapping the event
        out.append(Recording(f"{f.name}@mix", mix[a:max(a + sr, start + len(ev))]))
    return out


@functools.lru_cache(maxsize=None)
def cached_audio(path: Path, sr: int) -> np.ndarray:
    """Each audio file is decoded and resampled once per benchmark run (read-only arrays)."""
    from streamad.io.files import load_audio

    a = load_audio(path, sr)
    a.flags.writeable = False
    return a


def run_audio(specs: list[S.Spec], seeds: list[int], data: Path, table: Table) -> None:
    from streamad.benchmarks.audio_eval import _link_dir
    from streamad.config import from_dict
    from streamad.evaluation.audio import eval_audio
    from streamad.io.files import list_audio
    from streamad.train import load_recordings, train_model

    amb = list_audio([data / "audio" / "ambient"])
    train_f, test_f = [f for i, f in enumerate(amb) if i % 4 != 3], [f for i, f in enumerate(amb) if i % 4 == 3]
    events = {"babycry": data / "audio" / "babycry", "glass": data / "audio" / "glass-sfx"}
    import streamad.evaluation.audio as EA

    tmp = Path(tempfile.mkdtemp(prefix="streamad-zoo-"))
    EA.load_audio, uncached = cached_audio, EA.load_audio  # eval_audio re-reads every file per call
    try:
        normal_dir = _link_dir(test_f, tmp / "normal")
        recs = load_recordings(from_dict({}), train_f)
        with bar(len(seeds) * len(specs), "audio", "run") as pb:
            for seed in seeds:
                exposure = exposure_recordings(data, 16000, recs, seed) if any(s.exposure for s in specs) else None
                for spec in specs:
                    pb.set_postfix_str(f"{spec.row} seed {seed}")
                    cfg = from_dict({"model": {"detector": spec.detector, "params": spec.params},
                                     "train": {"seed": seed, "threads": torch.get_num_threads()}})
                    t0 = time.monotonic()
                    model = train_model(cfg, recs, None, show_progress=False,
                                        anomalies=exposure if spec.exposure else None)
                    fit_s = time.monotonic() - t0
                    res = {k: eval_audio(None, normal_dir, d, seed=seed, out=None, model=model, progress=False)
                           for k, d in events.items()}
                    W = np.zeros((128, model.frontend.window), dtype=np.float32)
                    t0 = time.perf_counter()
                    model.components(W, batch=128)
                    infer_ms = (time.perf_counter() - t0) * 1000
                    vals = {f"auc_{k}": r["mean_auc"] for k, r in res.items()}
                    vals.update({f"pauc_{k}": r["mean_pauc"] for k, r in res.items()})
                    vals["auc"] = float(np.mean([r["mean_auc"] for r in res.values()]))
                    vals["fa_per_hour"] = float(res["glass"]["pure_normal"]["per_hour"])
                    table.add(spec, vals, {"fit_s": round(fit_s, 1), "infer_ms_batch": round(infer_ms, 1)})
                    pb.update(1)
    finally:
        EA.load_audio = uncached
        shutil.rmtree(tmp, ignore_errors=True)
    table.d.update(batch=128, train_recordings=len(train_f), test_recordings=len(test_f),
                   exposure_recordings=len(exposure or []))


# -- command line ---------------------------------------------------------------------------
def select(specs: list[S.Spec], only: set[str] | None, quick: bool) -> list[S.Spec]:
    out = [s for s in specs if not only or s.row in only]
    return [S.quick(s) for s in out] if quick else out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="*", choices=[*DATASETS, []], help="default: all")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--detectors", help="comma-separated table rows to (re-)run, e.g. alad,deepsvdd-soft,hsc+OE "
                   "(default: all; the dataset's other rows are kept)")
    p.add_argument("--quick", action="store_true", help="smoke run: one seed, a few steps, small subsets")
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--out", type=Path, default=None, help="results directory (default docs/zoo; quick: a temp dir)")
    p.add_argument("--doc", type=Path, default=None, help="report (default docs/DETECTORS.md; quick: OUT/DETECTORS.md)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from OUT/results.json")
    p.add_argument("--add-seeds", action="store_true",
                   help="append the runs of these (new) seeds to the rows already in OUT/results.json")
    a = p.parse_args(argv)
    if a.add_seeds and a.detectors:  # the table's seed list would then be wrong for the rows not re-run
        p.error("--add-seeds runs every row of a dataset; it cannot be combined with --detectors")
    torch.set_num_threads(a.threads)
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    out = a.out or (Path(tempfile.mkdtemp(prefix="zoo-quick-")) if a.quick else Path("docs/zoo"))
    doc = a.doc or (out / "DETECTORS.md" if a.quick else Path("docs/DETECTORS.md"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    only = set(a.detectors.split(",")) if a.detectors else None
    save = lambda: path.write_text(json.dumps(results, indent=1))  # noqa: E731
    command = "python -m streamad.benchmarks.zoo " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in [] if a.report_only else (a.datasets or DATASETS):
        old = results["datasets"].get(name) if only or a.add_seeds else None  # keep what is there
        if a.add_seeds and old and set(seeds) & set(old.get("seeds", [])):
            p.error(f"--add-seeds: {name} already has seeds {old['seeds']}")
        partial = out / f"results.{name}.partial.json"  # a re-run's finished runs, not merged yet
        if old:  # the finished table stays as it is until the re-run rows are merged at the end; till then
            # every finished run goes to the dataset's side file, so an interrupted re-run loses none of them
            t = Table(name, "", "", lambda: partial.write_text(json.dumps(
                {"dataset": name, "command": command.strip(), "rows": t.d["rows"]}, indent=1)))
        else:
            t = Table(name, "", "", save)
            results["datasets"][name] = t.d  # partial results are saved as rows finish
        t0 = time.time()
        run_dataset(name, a, seeds, only, t)
        new = t.finish()
        if old:
            rows = add_seeds(old["rows"], new["rows"]) if a.add_seeds else {**old["rows"], **new["rows"]}
            new = {**old, "rows": rows, "wall_s": old.get("wall_s", 0) + new["wall_s"],
                   "command": (old.get("command") or "(an earlier run, command not recorded)") + "; then "
                   + command.strip()}
        else:
            new.update(command=command.strip())
        results["datasets"][name] = new
        all_seeds = sorted(set(old.get("seeds", [])) | set(seeds)) if a.add_seeds and old else seeds
        new.update(seeds=all_seeds, threads=a.threads, quick=a.quick, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        save()
        partial.unlink(missing_ok=True)
        print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    write_report(results, doc)
    print(f"wrote {path} and {doc}", file=sys.stderr)
    return 0


def add_seeds(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Rows of a run of more seeds appended to the rows of earlier seeds: per-seed lists joined,
    per-digit means weighted by their seed counts, summaries recomputed. Rows only one side has
    are kept as they are."""
    out = {**old, **new}
    for row in set(old) & set(new):
        a, b = old[row], new[row]
        m = {**a, "values": {k: a["values"].get(k, []) + b["values"].get(k, []) for k in a["values"] | b["values"]}}
        for k, v in b.items():
            if isinstance(v, list) and isinstance(a.get(k), list):
                m[k] = a[k] + v
        if "per_digit" in a and "per_digit" in b:
            na, nb = len(next(iter(a["values"].values()))), len(next(iter(b["values"].values())))
            m["per_digit"] = {d: (a["per_digit"][d] * na + b["per_digit"][d] * nb) / (na + nb) for d in a["per_digit"]}
        m["summary"] = {k: _mean_std(v) for k, v in m["values"].items()}
        out[row] = m
    return out


def run_dataset(name: str, a: argparse.Namespace, seeds: list[int], only: set[str] | None, t: Table) -> None:
    q = a.quick
    if name == "kdd99":
        t.d.update(protocol=D.__doc__.split("* ``kdd99``:")[1].split("* ``arrhythmia``")[0].strip(), metric="f1")
        loader = (lambda data, seed: _shrink(D.kdd99(data, seed), seed)) if q else D.kdd99
        run_tabular(name, loader, select(S.kdd99_specs(), only, q), seeds, 0.2, a.data, 50, t)
    elif name == "arrhythmia":
        t.d.update(protocol="ODDS Arrhythmia, as KDD99 with the threshold at the 15 % outlier ratio", metric="f1")
        run_tabular(name, D.arrhythmia, select(S.arrhythmia_specs(), only, q), seeds, 0.15, a.data, 50, t)
    elif name == "mnist":
        t.d.update(protocol=D.__doc__.split("* ``mnist``:")[1].strip(), metric="auc")
        specs = select(S.mnist_specs() + S.mnist_oe_specs(), only, q)
        run_mnist(specs, seeds, a.data, [0, 1] if q else list(range(10)), 200 if q else S.MNIST_N_TRAIN,
                  50 if q else S.MNIST_N_TEST, t)
    else:
        t.d.update(protocol=AUDIO_PROTOCOL, metric="auc")
        run_audio(select(S.audio_specs() + S.audio_oe_specs(), only, q), seeds, a.data, t)


def _shrink(split: D.Split, seed: int) -> D.Split:
    rng = np.random.default_rng(seed)
    tr = torch.from_numpy(np.sort(rng.choice(len(split.X_train), 5000, replace=False)))
    X_test, y_test = stratified_cap(split.X_test, split.y_test, 5000, seed)
    return D.Split(split.X_train[tr], X_test, y_test)


if __name__ == "__main__":
    sys.exit(main())
