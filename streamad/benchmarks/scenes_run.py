"""Command for the per-scene benchmark (protocol: ``streamad.benchmarks.scenes``).

    python -m streamad.benchmarks.audio_eval --protocol scenes [--quick] [--detectors default,gmm64]
        [--split all|dev|held-out] [--scenes NAME,...] [--preset NAME='{json}'] [--out docs/eval/scenes]

Detectors are named presets (configs deep-merged over the shipped ``configs/audio.yaml``):
``default`` (what ``streamad train`` ships), ``gmm64`` (the issue's baseline: 64 mel bands per
frame, 8 diagonal components, window score = mean frame NLL) and ``gmgan32`` (the previous
default: GMGAN on 32x32 patches, 1500 steps). ``--preset NAME='{...}'`` adds one for experiments.

Writes OUT/results.json (every row, merged with earlier rows of other presets run under the same
protocol settings), OUT/RESULTS.md (summary + per-scene tables) and OUT/roc/<scene>.png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streamad import metrics
from streamad.benchmarks import scenes as S
from streamad.config import from_dict, merge_dicts as merge  # merge: audio_eval and tests import it from here
from streamad.io.files import default_data_dir
from streamad.progress import bar

ROOT = Path(__file__).resolve().parents[2]
PREV_DEFAULT = {  # the audio default before issue 7, pinned so it stays reproducible
    "audio": {"n_mels": 32, "frames": 32, "n_fft": 1024, "window_s": 1.0, "hop_s": 0.5, "fmin": 50.0},
    "model": {"detector": "gmgan", "params": {"steps": 1500}, "score_weights": {}},
    "train": {"train_hop_s": 0.125, "holdout_fraction": 0.2, "calibration": "holdout"},
}
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gmm64": {"audio": {"n_mels": 64, "frames": 32, "n_fft": 1024}, "model": {
        "detector": "frame_gmm", "params": {"k": 8}, "score_weights": {}},
        "train": {"train_hop_s": 0.125, "holdout_fraction": 0.2, "calibration": "holdout"}},
    "gmgan32": PREV_DEFAULT,
    # the audio default from 2026-12-02 to 2026-12-04 (local contrast; no band_top, no weight choice)
    "local8": {"model": {"detector": "frame_fullgmm", "params": {"diag_k": 8, "floor": 0.01, "local_k": 8},
                         "score_weights": {"nll": 1, "nll_top": 1, "nll_diag": 1, "nll_local_top": 1},
                         "score_weights_choice": []}},
}


PLOTTED = ("gmgan32", "gmm64", "local8", "default")  # presets always drawn in the per-scene ROC plots


def shipped() -> dict[str, Any]:
    d = yaml.safe_load((ROOT / "configs" / "audio.yaml").read_text())
    return {k: d[k] for k in ("kind", "audio", "model", "train", "alerts") if k in d}


def preset_cfg(name: str, extra: dict[str, dict]) -> Any:
    over = extra.get(name, PRESETS.get(name))
    if over is None:
        raise SystemExit(f"unknown preset {name!r} (known: {', '.join(sorted({**PRESETS, **extra}))})")
    d = merge(shipped(), over)
    m = over.get("model", {})
    if m.keys() & {"detector", "params", "score_weights"} and "score_weights_choice" not in m:
        # the shipped alternatives to the shipped weights go with them: a preset of other weights,
        # parameters or detector has none unless it lists its own
        d["model"]["score_weights_choice"] = []
    if (m or over.get("audio")) and "escalate_to" not in over.get("train", {}):
        # nor the shipped escalation: a preset of another model or front end (every preset before it) has
        # none unless it lists its own; one of training or alert settings keeps it
        d["train"]["escalate_to"] = None
    d.setdefault("train", {})["threads"] = 1
    return from_dict(d)


def _curve(res: dict) -> list[list[float]]:
    pos = np.concatenate([p for p, _ in res["curves"].values()])
    neg = next(iter(res["curves"].values()))[1]
    fpr, tpr, _ = metrics.roc_curve(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 60)).astype(int))
    return [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]


def run(a: argparse.Namespace, extra: dict[str, dict]) -> dict[str, Any]:
    t0 = time.monotonic()
    names = a.scenes.split(",") if a.scenes else None
    scenes = S.load_scenes(a.data, names, a.split)
    if a.quick:
        scenes = scenes[::4]
    events = S.load_events(a.data)
    proto = {"train_frac": a.train_frac, "loop_s": a.loop_s, "min_events": a.min_events, "seed": a.seed}
    if a.history_s:
        proto["history_s"] = a.history_s
    presets = a.detectors.split(",")
    rows: list[dict[str, Any]] = []
    a.out.mkdir(parents=True, exist_ok=True)
    partial = (a.out / "partial.jsonl").open("w")  # rows as they come (watch a long run)
    with bar(len(scenes) * len(presets), "scenes", "model") as pb:
        for sc in scenes:
            S.plan_events(sc, len(events[sc.split]), a.min_events, a.seed, a.train_frac, a.history_s)
            for p in presets:
                pb.set_postfix_str(f"{sc.name[:28]} {p}")
                r, _ = S.run_scene(preset_cfg(p, extra), sc, events[sc.split], a.loop_s)
                r["roc"] = _curve(r)
                del r["curves"]
                rows.append({"preset": p, **proto, **r})
                partial.write(json.dumps(rows[-1], default=S.nan_safe) + "\n")
                partial.flush()
                pb.update(1)
    partial.close()
    return {"rows": rows, "protocol": proto, "wall_s": round(time.monotonic() - t0, 1)}


def _load_old(out: Path, proto: dict | None, presets: list[str]) -> tuple[list[dict], dict, list[str]]:
    """Earlier rows (other presets, same protocol settings; all rows when proto is None), the
    preset definitions they were run with, and the notes on how they were made (none when no
    earlier row is kept)."""
    f = out / "results.json"
    if not f.exists():
        return [], {}, []
    old = json.loads(f.read_text())
    rows = [r for r in old.get("rows", []) if r["preset"] not in presets
            and (proto is None or all(r.get(k) == v for k, v in {"history_s": None, **proto}.items()))]
    return rows, old.get("presets", {}), old.get("notes", []) if rows else []


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


def write(out: Path, res: dict, presets: list[str], extra: dict, argv: list[str]) -> dict[str, Any]:
    from streamad.benchmarks.scenes_report import plot_scene, tables

    out.mkdir(parents=True, exist_ok=True)
    for r in res["rows"]:
        r.update(commit=_commit(), date=time.strftime("%Y-%m-%d"))
    old_rows, old_presets, old_notes = _load_old(out, res["protocol"], presets)
    notes = list(dict.fromkeys(old_notes + list(res.get("notes") or [])))  # earlier notes stay with their rows
    rows = old_rows + res["rows"]
    summary = {}
    for p in dict.fromkeys(r["preset"] for r in rows):
        for sp in ("dev", "held-out", "all"):
            rr = [r for r in rows if r["preset"] == p and (sp == "all" or r["split"] == sp)]
            if rr:
                summary.setdefault(p, {})[sp] = S.summarise(rr)
    doc = {"protocol": S.__doc__.split("Protocol")[1].strip(), "settings": res["protocol"],
           "command": "python -m streamad.benchmarks.audio_eval " + " ".join(argv),
           "wall_s_last_run": res["wall_s"], "presets": {p: extra.get(p, PRESETS.get(p, old_presets.get(p))) for p in summary},
           "summary": summary, "rows": rows, **({"notes": notes} if notes else {})}
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=S.nan_safe))
    (out / "RESULTS.md").write_text(tables(doc))
    shown = set(PLOTTED) | set(presets)  # a readable plot: the reference rows and this run's
    for name in dict.fromkeys(r["scene"] for r in rows):
        mine = [r for r in rows if r["scene"] == name]
        plot_scene([r for r in mine if r["preset"] in shown] or mine, out / "roc" / f"{name}.png")
    return doc


def _compare(out: Path, names: str) -> int:
    from streamad.benchmarks.scenes_compare import compare, table

    pair = names.split(",")
    if len(pair) != 2 or not all(pair):
        raise SystemExit(f"--compare: two presets A,B, got {names!r}")
    rows = json.loads((out / "results.json").read_text())["rows"]
    known = {r["preset"] for r in rows}
    missing = [p for p in pair if p not in known]
    if missing:
        raise SystemExit(f"--compare: no rows of preset {missing[0]!r} in {out / 'results.json'}")
    res = compare(rows, *pair)
    if not res:
        raise SystemExit(f"--compare: {pair[0]} and {pair[1]} share no scene of one split")
    print(table(res, *pair), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="scenes")
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--out", type=Path, default=None, help="default docs/eval/scenes (quick: /tmp/streamad-scenes-quick)")
    p.add_argument("--detectors", default="default,gmm64", help="comma-separated presets")
    p.add_argument("--preset", action="append", default=[], help="NAME='{json config over configs/audio.yaml}'")
    p.add_argument("--split", default="all", choices=("all", "dev", "held-out"))
    p.add_argument("--scenes", default="", help="comma-separated scene names (file stems)")
    p.add_argument("--quick", action="store_true", help="every 4th scene, 10-min loops, 4 events per EBR")
    p.add_argument("--train-frac", type=float, default=S.TRAIN_FRAC)
    p.add_argument("--history-s", type=float, default=None,
                   help="train on the last S seconds of the training part only (history study; same test part)")
    p.add_argument("--loop-s", type=float, default=None, help="looped held-out stream length (default 3600)")
    p.add_argument("--min-events", type=int, default=None, help="events per scene and EBR (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md and plots from OUT/results.json")
    p.add_argument("--compare", default="", metavar="A,B",
                   help="print presets A and B of OUT/results.json side by side: paired per-scene differences "
                        "with 95 %% bootstrap intervals, false-alert counts with an exact test; runs nothing")
    a = p.parse_args(argv)
    a.loop_s = a.loop_s or (600.0 if a.quick else 3600.0)
    a.min_events = a.min_events or (4 if a.quick else 8)
    a.out = a.out or (Path("/tmp/streamad-scenes-quick") if a.quick else ROOT / "docs" / "eval" / "scenes")
    extra = {}
    for s in a.preset:
        name, _, js = s.partition("=")
        extra[name] = json.loads(js)
    if a.compare:
        return _compare(a.out, a.compare)
    import torch

    torch.set_num_threads(1)
    if a.report_only:
        old = json.loads((a.out / "results.json").read_text())
        res = {"rows": [], "protocol": old["settings"], "wall_s": old["wall_s_last_run"], "notes": old.get("notes")}
        argv = old["command"].split(" ", 3)[-1].split(" ")
        doc = write(a.out, res, [], extra, argv)
    else:
        res = run(a, extra)
        doc = write(a.out, res, a.detectors.split(","), extra, argv)
    from streamad.benchmarks.scenes_report import summary_table

    print(summary_table(doc))
    print(f"wall time {res['wall_s']:.0f} s; wrote {a.out}/RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
