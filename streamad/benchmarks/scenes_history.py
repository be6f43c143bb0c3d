"""How much normal history a scene needs: the per-scene benchmark's ``--history-s`` runs side by side.

    python -m streamad.benchmarks.scenes_history --full docs/eval/scenes/results.json [RUN/results.json ...] \\
        --runs /tmp/hist5 /tmp/hist10 /tmp/hist20 /tmp/hist40 --out docs/eval/scenes

Each run directory holds the ``results.json`` of one ``audio_eval --protocol scenes --history-s S``
run (same scenes, same test parts and events); ``--full`` holds the rows of the benchmark's own
setting (all of the first 55 %), which are read for the same scenes and presets. Writes
``OUT/history.json`` (per history and preset: the summary over the scenes and each scene's AUC,
F1, false alerts and threshold) and ``OUT/history.png`` (mean AUC, F1 and looped false alerts
against the seconds of history), and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streamad.benchmarks import scenes as S


def collect(full: list[Path], runs: list[Path]) -> dict[str, Any]:
    """{"points": [{history_s, preset, summary, scenes}]}: one point per run and preset, plus the
    full-history rows of the same scenes and presets (history_s None)."""
    points, scenes, presets = [], set(), set()
    for d in runs:
        doc = json.loads((d / "results.json").read_text())
        h = doc["settings"].get("history_s")
        if not h:
            raise SystemExit(f"{d}: not a --history-s run")
        for p in dict.fromkeys(r["preset"] for r in doc["rows"]):
            rows = [r for r in doc["rows"] if r["preset"] == p]
            scenes |= {r["scene"] for r in rows}
            presets.add(p)
            points.append(_point(h, p, rows))
    every = [r for f in full for r in json.loads(f.read_text())["rows"] if not r.get("history_s")]
    for p in sorted(presets):
        rows = list({r["scene"]: r for r in every if r["preset"] == p and r["scene"] in scenes}.values())
        if len(rows) == len(scenes):
            points.append(_point(None, p, rows))
    points.sort(key=lambda q: (q["preset"], q["history_s"] or 1e9))
    return {"scenes": sorted(scenes), "points": points}


def _point(h: float | None, preset: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"history_s": h, "preset": preset, "summary": S.summarise(rows),
            "scenes": {r["scene"]: {"train_seconds": r["train_seconds"], "auc": round(r["mean_auc"], 4),
                                    "f1": round(r["mean_f1"], 3), "fa_pure": r["fa_pure"]["alerts"],
                                    "fa_loop": r["fa_loop"]["alerts"], "threshold": round(r["threshold"], 3)}
                       for r in rows}}


def table(res: dict[str, Any]) -> str:
    lines = ["| preset | history | mean AUC | < 0.90 | mean F1 | FA/h pure (scenes > 1/h) "
             "| FA/h looped (scenes > 1/h) |",
             "|---|---|---|---|---|---|---|"]
    for q in res["points"]:
        s = q["summary"]
        h = f"{q['history_s']:g} s" if q["history_s"] else "all (first 55 %)"
        lines.append(f"| {q['preset']} | {h} | {s['mean_auc']:.3f} | {s['scenes_below_0.90']} | {s['mean_f1']:.3f} | "
                     f"{s['fa_pure_per_hour']:.1f} ({s['fa_pure_scenes_over_1h']}) | "
                     f"{s['fa_loop_per_hour']:.1f} ({s['fa_loop_scenes_over_1h']}) |")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(9.0, 3.0), dpi=80)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for p in dict.fromkeys(q["preset"] for q in res["points"]):
        pts = [q for q in res["points"] if q["preset"] == p]
        xs = [q["history_s"] or sum(v["train_seconds"] for v in q["scenes"].values()) / len(q["scenes"]) for q in pts]
        for ax, key in zip(axes, ("mean_auc", "mean_f1", "fa_loop_per_hour")):
            ax.plot(xs, [q["summary"][key] for q in pts], "o-", label=p)
    ticks = sorted({round(x) for line in axes[0].get_lines() for x in line.get_xdata()})
    for ax, title in zip(axes, ("mean ROC-AUC", "mean event F1", "false alerts / h (looped)")):
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("normal history, s (last point: all, mean)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[2].set_yscale("symlog", linthresh=1)
    axes[2].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"history study: {len(res['scenes'])} scenes with >= 40 s of training audio", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", type=Path, nargs="+", default=[Path("docs/eval/scenes/results.json")],
                    help="results.json files with rows of the full history (later files win)")
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/eval/scenes"))
    a = ap.parse_args(argv)
    res = collect(a.full, a.runs)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "history.json").write_text(json.dumps(res, indent=1, default=S.nan_safe))
    plot(res, a.out / "history.png")
    print(table(res))
    print(f"wrote {a.out}/history.json and history.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
