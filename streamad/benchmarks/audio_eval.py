"""Audio benchmark: GMGAN vs its ablations and baselines on the same windows.

    python -m streamad.benchmarks.audio_eval [--data ../shared/data] [--out docs/eval]
        [--detectors gmgan,ganomaly,cae,frame_gmm,default] [--steps N] [--scenes]
    python -m streamad.benchmarks.audio_eval --protocol scenes [--quick] ...

``--protocol scenes``: the per-scene benchmark on audio/scenes + audio/events (issue 7), see
``streamad.benchmarks.scenes`` and ``streamad.benchmarks.scenes_run`` (its own options).

Protocol (one model for one place): the 64 ambient recordings (one every 15 min over a day)
are split by position: every 4th recording is held out for evaluation, the rest trains
(and, inside training, every 5th is held back for calibration). Events (baby cry, glass)
are mixed into the held-out recordings at EBR -6/0/+6 dB by ``streamad.evaluation.audio``.

``--scenes``: one model per acoustic scene, the paper's protocol. The recordings are grouped
into four time-of-day scenes (night 00-06, morning 06-12, afternoon 12-18, evening 18-24,
very different soundscapes at this site); each scene model trains on 3/4 of its scene and is
evaluated on the rest.

Writes ``OUT/results.json``, ``OUT/RESULTS.md`` (tables) and the ROC/residual PNGs per run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from streamad.config import from_dict
from streamad.io.files import default_data_dir
from streamad.evaluation.audio import eval_audio
from streamad.io.files import list_audio
from streamad.train import load_recordings, train_model


def _link_dir(files: list[Path], where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for f in files:
        (where / f.name).symlink_to(f.resolve())
    return where


def _scene(f: Path) -> str:
    hh = int(f.stem.split("_")[-1][:2])
    return ["night", "morning", "afternoon", "evening"][hh // 6]


def _config(det: str, steps: int | None, seed: int):
    """``default`` is what ``streamad train`` ships (configs/audio.yaml); any other name is that
    detector with the built-in audio settings (32x32 patches)."""
    if det == "default":
        from streamad.benchmarks.scenes_run import merge, shipped

        return from_dict(merge(shipped(), {"train": {"seed": seed, "threads": 1}}))
    params = {"steps": steps} if steps and det != "frame_gmm" else {}
    return from_dict({"model": {"detector": det, "params": params}, "train": {"seed": seed, "threads": 1}})


def run(data: Path, out: Path, detectors: list[str], steps: int | None, scenes: bool, seed: int) -> dict:
    amb = list_audio([data / "audio" / "ambient"])
    events = {"babycry": data / "audio" / "babycry", "glass": data / "audio" / "glass-sfx"}
    splits = {"one-place": ([f for i, f in enumerate(amb) if i % 4 != 3], [f for i, f in enumerate(amb) if i % 4 == 3])}
    if scenes:
        for sc in ("night", "morning", "afternoon", "evening"):
            fs = [f for f in amb if _scene(f) == sc]
            splits[f"scene-{sc}"] = ([f for i, f in enumerate(fs) if i % 4 != 3], [f for i, f in enumerate(fs) if i % 4 == 3])
    results: dict = {"protocol": __doc__.split("Writes")[0].strip(), "runs": []}
    tmp = Path(tempfile.mkdtemp(prefix="streamad-eval-"))
    try:
        for split, (train_f, test_f) in splits.items():
            normal_dir = _link_dir(test_f, tmp / split / "normal")
            for det in detectors:
                if split != "one-place" and det not in ("gmgan", "frame_gmm", "default"):
                    continue
                cfg = _config(det, steps, seed)
                t0 = time.monotonic()
                print(f"== {split}: training {det} on {len(train_f)} recordings", file=sys.stderr, flush=True)
                model = train_model(cfg, load_recordings(cfg, train_f), tmp / split / det / "model")
                train_s = time.monotonic() - t0
                for ev_name, ev_dir in events.items():
                    print(f"   evaluating {det} / {ev_name}", file=sys.stderr, flush=True)
                    r = eval_audio(None, normal_dir, ev_dir, seed=seed, out=out / split / det / ev_name, model=model)
                    r.update(split=split, events_set=ev_name, preset=det, train_s=round(train_s, 1),
                             train_recordings=len(train_f), test_recordings=len(test_f))
                    results["runs"].append(r)
                    print(f"   {split} {det} {ev_name}: mean AUC {r['mean_auc']:.3f} pAUC {r['mean_pauc']:.3f} "
                          f"F1 {r['mean_f1']:.2f} FA/h {r['pure_normal']['per_hour']:.1f}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "RESULTS.md").write_text(table(results))
    return results


def table(results: dict) -> str:
    lines = ["| split | detector | events | AUC -6 | AUC 0 | AUC +6 | mean AUC | mean pAUC | F1 -6/0/+6 | FA/h (pure) | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        pe = r["per_ebr"]
        f1 = "/".join(f"{pe[k]['f1']:.2f}" for k in ("-6", "0", "6"))
        name = r["detector"] + (" (shipped default)" if r.get("preset") == "default" else "")
        lines.append(f"| {r['split']} | {name} | {r['events_set']} | {pe['-6']['auc']:.3f} | {pe['0']['auc']:.3f} | "
                     f"{pe['6']['auc']:.3f} | **{r['mean_auc']:.3f}** | {r['mean_pauc']:.3f} | {f1} | "
                     f"{r['pure_normal']['per_hour']:.1f} ({r['pure_normal']['false_alerts']} in "
                     f"{r['pure_normal']['hours'] * 60:.0f} min) | {r['train_s']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--protocol=scenes" in argv or ("--protocol" in argv and argv[argv.index("--protocol") + 1:][:1] == ["scenes"]):
        from streamad.benchmarks.scenes_run import main as scenes_main

        return scenes_main(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--out", type=Path, default=Path("docs/eval"))
    p.add_argument("--detectors", default="gmgan,ganomaly,cae,frame_gmm")
    p.add_argument("--steps", type=int, default=None, help="training steps for the neural detectors")
    p.add_argument("--scenes", action="store_true", help="also the one-model-per-scene protocol")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", default="one-place", choices=("one-place", "scenes"),
                   help="scenes: the per-scene benchmark (python -m streamad.benchmarks.scenes_run -h)")
    a = p.parse_args(argv)
    r = run(a.data, a.out, a.detectors.split(","), a.steps, a.scenes, a.seed)
    print(table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
