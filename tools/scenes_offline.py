"""Offline first look at a new audio score component, on the per-scene benchmark's own scenes and events.

Every audio change of docs/EVAL.md was first tried offline: the shipped default trained per scene
exactly as ``python -m streamad.benchmarks.audio_eval --protocol scenes`` trains it (first 55 %,
event plan seed 0, 8 events per scene and EBR), its window scores kept, and a candidate component
computed on the same windows and added to the default's score. Window ROC-AUC only (no threshold,
no false alerts): a filter before a benchmark run, not a replacement for it.

    python tools/scenes_offline.py cache --split dev [--part 0 --parts 2]   # ~3 min per part, 2 parts side by side
    python tools/scenes_offline.py nmf --split dev --atoms 32 --iters 20
    python tools/scenes_offline.py context --split dev --context-s 2 5 10 --alpha 0.5 1
    python tools/scenes_offline.py flux --split dev --lag 1 2 --bands 4
    python tools/scenes_offline.py sfxtaps --split dev --weight 0.5 1 [--crop 72]
    python tools/scenes_offline.py sfxoe --split dev --weight 0.25 0.5 1 [--hidden 0 64 --copies 2 --every-s 1.5]

``cache`` stores, per scene, the default's scores of the pure test part's windows and of the
event windows at each EBR, and the log-mel power (dB, unstandardised) of those windows and of the
training windows (``--cache``, default /tmp/scenes-offline). ``nmf`` is the component tried on
2026-12-04 (docs/EVAL.md, "A non-negative dictionary of the scene's spectra"): a dictionary of
``--atoms`` non-negative spectra learned from the training frames' mel power (KL divergence,
multiplicative updates), each frame explained by it with non-negative activations, the frame scored
by the mean of its ``--bands`` largest positive residuals 10·log10(V / WH) in dB (what the scene's
own sounds cannot explain, added energy being the physics of an event over a background), a window
by its worst 1/8 frames. Standardised on out-of-fold training windows (two contiguous halves) and
added to the default's score at ``--weight`` (0.5 = weight 2 beside the default's four weight-1
components). ``context`` (tried the same day) scores each window against its own stream's recent past:
its score less ``--alpha`` times the median of the stream's scores over the previous ``--context-s``
seconds at the daemon's hop (what a busy background does to the scores for seconds cancels; a sudden
event does not); it needs a cache made since the mixtures' whole score sequences are kept. ``flux`` (2026-12-05): onsets,
each band's rise over ``--lag`` frames standardised by the training frames' per-band mean and std, a frame
scored by its ``--bands`` largest, a window by its worst 1/8 frames, standardised and added like ``nmf``. ``sfxtaps`` (2026-12-05): which layer and
pooling of the sound-effects CNN's feature maps (``frame_sfx``'s ``sfx_top``) hears events best, alone and added.
``sfxoe`` (2026-12-05, twenty-fourth session): outlier exposure on the CNN's steps, a classifier of normal steps
against steps of the training audio with generic synthetic sounds added, beside the CNN's nearest-neighbour distance;
``sfxgauss`` (the same day): the CNN's steps against one shrunk Gaussian (``frame_sfx``'s ``sfx_gauss``). The three
CNN looks live in ``tools/scenes_offline_sfx.py``.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamad import metrics  # noqa: E402
from streamad.benchmarks import scenes as S  # noqa: E402
from streamad.progress import bar  # noqa: E402
from streamad.stats import robust_center_scale  # noqa: E402


def cache(a: argparse.Namespace) -> None:
    from streamad.benchmarks.scenes_run import preset_cfg
    from streamad.evaluation.mixing import window_labels
    from streamad.scoring import window_times
    from streamad.train import Recording, train_model
    from streamad.windows.base import frame_windows

    torch.set_num_threads(1)
    out = a.cache / a.split
    out.mkdir(parents=True, exist_ok=True)
    scenes = S.load_scenes(a.data, None, a.split)[a.part::a.parts]
    events = S.load_events(a.data)
    cfg = preset_cfg("default", {})
    with bar(len(scenes), "cache", "scene") as pb:
        for sc in scenes:
            f = out / f"{sc.name}.pkl"
            pb.set_postfix_str(sc.name[:28])
            if not f.exists():
                S.plan_events(sc, len(events[sc.split]), 8, a.seed)
                model = train_model(cfg, [Recording(sc.name, sc.train)], None, show_progress=False)
                fe = model.frontend
                fine = fe.hop // 4

                def db(sig: np.ndarray, hop: int) -> np.ndarray:
                    w = frame_windows(sig, fe.window, hop)
                    return np.concatenate([fe.logmel(torch.from_numpy(w[i:i + 512].astype(np.float32))).numpy()
                                           for i in range(0, len(w), 512)]).astype(np.float32)

                pos, pos_db, seqs = {}, {}, {}
                for ebr in S.EBRS:
                    ps, pd, seqs[ebr] = [], [], []
                    for sig, ivs in S.mixes(sc, events[sc.split], ebr):
                        s = S.score_at(model, sig, fine)
                        lab = window_labels(*window_times(model, np.arange(len(s)) * fine), ivs) == 1
                        ps.append(s[lab])
                        pd.append(db(sig, fine)[lab])
                        seqs[ebr].append((s, lab))  # the whole mixture in time order (stream-context scores)
                    pos[ebr], pos_db[ebr] = np.concatenate(ps), np.concatenate(pd)
                rec = {"neg": S.score_at(model, sc.test, fine), "pos": pos, "neg_db": db(sc.test, fine),
                       "pos_db": pos_db, "tr_db": db(sc.train, fe.train_hop(cfg)), "seqs": seqs}
                f.write_bytes(pickle.dumps(rec))
            pb.update(1)


def _mu_step(W: torch.Tensor, H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """One multiplicative update of the activations under the KL divergence."""
    return H * (W.T @ (V / (W @ H + 1e-12))) / (W.sum(0)[:, None] + 1e-30)


def nmf_fit(V: torch.Tensor, k: int, iters: int, seed: int) -> torch.Tensor:
    """(D, n) non-negative frames -> (D, k) dictionary with unit-sum atoms (KL, multiplicative updates)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(V.shape[0], k, generator=g, dtype=torch.float64) + 0.1
    H = torch.rand(k, V.shape[1], generator=g, dtype=torch.float64) * V.mean() + 1e-6
    for _ in range(iters):
        H = _mu_step(W, H, V)
        WH = W @ H + 1e-12
        W = W * ((V / WH) @ H.T) / (H.sum(1)[None, :] + 1e-30)
        s = W.sum(0, keepdim=True)
        W, H = W / s, H * s.T
    return W


def nmf_frames(W: torch.Tensor, db: np.ndarray, iters: int, bands: int) -> np.ndarray:
    """(n, D, F) dB windows -> (n, F) frame scores: mean of the ``bands`` largest positive dB residuals."""
    n, d, f = db.shape
    out = []
    for i in range(0, n, 512):
        V = (10 ** (torch.from_numpy(db[i:i + 512]).double() / 10)).permute(1, 0, 2).reshape(d, -1) + 1e-10
        H = torch.ones(W.shape[1], V.shape[1], dtype=torch.float64) * V.mean(0, keepdim=True) / W.shape[1]
        for _ in range(iters):
            H = _mu_step(W, H, V)
        r = torch.relu(10 * torch.log10(V / (W @ H + 1e-12)))
        out.append(r.topk(bands, dim=0).values.mean(0).reshape(-1, f).numpy())
    return np.concatenate(out)


def worst(frames: np.ndarray, q: float = 0.125) -> np.ndarray:
    k = max(1, int(round(frames.shape[1] * q)))
    return np.sort(frames, 1)[:, -k:].mean(1)


def mean_auc(pos: dict, neg: np.ndarray) -> float:
    return float(np.mean([metrics.roc_auc(np.r_[np.ones(len(p)), np.zeros(len(neg))], np.r_[p, neg])
                          for p in pos.values()]))


def _cached(a: argparse.Namespace) -> list[Path]:
    files = sorted((a.cache / a.split).glob("*.pkl"))
    if not files:
        sys.exit(f"scenes_offline: no cached scenes in {a.cache / a.split}: run `cache --split {a.split}` first")
    return files


def _report(rows: list[dict], row: dict) -> None:
    """One scene's row, kept and printed as it comes."""
    rows.append(row)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else v for k, v in row.items()), flush=True)


def _summary(rows: list[dict]) -> None:
    """Mean window ROC-AUC per column, and the scenes each column puts above / below the default."""
    keys = [k for k in rows[0] if k != "scene"]
    print("mean " + " ".join(f"{k}={np.mean([r[k] for r in rows]):.4f}" for k in keys))
    print("scenes up/down vs default " + " ".join(
        f"{k}={sum(r[k] > r['default'] + 1e-9 for r in rows)}/{sum(r[k] < r['default'] - 1e-9 for r in rows)}"
        for k in keys[1:]))


def _added(row: dict, c: dict, fit: Callable[[np.ndarray], Any], score: Callable[[Any, np.ndarray], np.ndarray],
           weights: list[float], label: str = "") -> None:
    """A candidate component beside the default: ``fit`` on the training windows (each half, then all),
    standardised on out-of-fold training windows (two contiguous halves), scored on the test and event
    windows; ``row`` gets its ROC-AUC alone (``<label>alone``) and added to the default's score at each
    weight (``<label>+<w>``)."""
    tr = c["tr_db"]
    half = np.arange(len(tr)) < len(tr) // 2
    fa, fb, fall = fit(tr[half]), fit(tr[~half]), fit(tr)
    center, scale = robust_center_scale(np.r_[score(fb, tr[half]), score(fa, tr[~half])], fallback=1.0)
    neg = (score(fall, c["neg_db"]) - center) / scale
    pos = {e: (score(fall, d) - center) / scale for e, d in c["pos_db"].items()}
    row[f"{label}alone"] = mean_auc(pos, neg)
    for w in weights:
        row[f"{label}+{w:g}"] = mean_auc({e: c["pos"][e] + w * pos[e] for e in pos}, c["neg"] + w * neg)


def nmf(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads)
    files = _cached(a)
    rows = []
    with bar(len(files), "nmf", "scene") as pb:
        for f in files:
            c = pickle.loads(f.read_bytes())
            rng = np.random.default_rng(a.seed)

            def fit(tr: np.ndarray) -> torch.Tensor:
                fr = torch.from_numpy(tr).double().permute(1, 0, 2).reshape(tr.shape[1], -1)
                sel = torch.from_numpy(rng.choice(fr.shape[1], min(8000, fr.shape[1]), replace=False))
                return nmf_fit(10 ** (fr[:, sel] / 10) + 1e-10, a.atoms, 150, a.seed)

            def score(W: torch.Tensor, db: np.ndarray) -> np.ndarray:
                return worst(nmf_frames(W, db, a.iters, a.bands))

            row = {"scene": f.stem, "default": mean_auc(c["pos"], c["neg"])}
            _added(row, c, fit, score, a.weight)
            _report(rows, row)
            pb.update(1)
    _summary(rows)


def in_context(s: np.ndarray, stride: int, n: int, alpha: float) -> np.ndarray:
    """Scores of one stream in time order (fine hop) less ``alpha`` times the median of the ``n``
    scores before each at the daemon's hop (``stride`` fine hops apart): the window against the
    stream's own recent past; no past (a stream's first window) counts as the training centre, 0."""
    out = s.astype(np.float64).copy()
    for t in range(len(s)):
        past = s[t - stride::-stride][:n] if t >= stride else s[:0]
        out[t] -= alpha * (float(np.median(past)) if len(past) else 0.0)
    return out


def context(a: argparse.Namespace) -> None:
    files = _cached(a)
    stride = 4  # the cache's fine hop is a quarter of the daemon's
    variants = [(sec, al) for sec in a.context_s for al in a.alpha]
    rows = []
    with bar(len(files), "context", "scene") as pb:
        for f in files:
            c = pickle.loads(f.read_bytes())
            if "seqs" not in c:
                sys.exit(f"scenes_offline: {f} was cached without the mixtures' sequences: cache it again")
            row = {"scene": f.stem, "default": mean_auc(c["pos"], c["neg"])}
            for sec, al in variants:
                n = max(1, int(round(sec / 0.5)))
                neg = in_context(c["neg"], stride, n, al)
                pos = {e: np.concatenate([in_context(sq, stride, n, al)[lab] for sq, lab in seqs])
                       for e, seqs in c["seqs"].items()}
                row[f"{sec:g}s*{al:g}"] = mean_auc(pos, neg)
            _report(rows, row)
            pb.update(1)
    _summary(rows)


def _flux(db: np.ndarray, lag: int) -> np.ndarray:
    """(n, D, F) dB windows -> (n, D, F - lag): each band's rise over ``lag`` frames (falls are 0)."""
    return np.maximum(db[:, :, lag:] - db[:, :, :-lag], 0)


def flux(a: argparse.Namespace) -> None:
    files = _cached(a)
    rows = []
    with bar(len(files), "flux", "scene") as pb:
        for f in files:
            c = pickle.loads(f.read_bytes())
            row = {"scene": f.stem, "default": mean_auc(c["pos"], c["neg"])}
            for lag in a.lag:
                def fit(db: np.ndarray, lag: int = lag) -> tuple[np.ndarray, np.ndarray]:
                    fl = _flux(db, lag)
                    return fl.mean((0, 2)), fl.std((0, 2)) + 0.5  # per band; 0.5 dB floor for silent bands

                def score(st: tuple[np.ndarray, np.ndarray], db: np.ndarray, lag: int = lag) -> np.ndarray:
                    z = (_flux(db, lag) - st[0][None, :, None]) / st[1][None, :, None]
                    return worst(-np.sort(-z, axis=1)[:, :a.bands, :].mean(1))

                _added(row, c, fit, score, a.weight, f"L{lag}")
            _report(rows, row)
            pb.update(1)
    _summary(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["cache", "nmf", "context", "flux", "sfxtaps", "sfxoe", "sfxgauss"])
    p.add_argument("--split", default="dev", choices=["dev", "held-out"])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--cache", type=Path, default=Path("/tmp/scenes-offline"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part", type=int, default=0, help="cache: this part of the scene list (of --parts)")
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--atoms", type=int, default=32)
    p.add_argument("--iters", type=int, default=20, help="activation updates per frame at scoring")
    p.add_argument("--bands", type=int, default=4)
    p.add_argument("--weight", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--context-s", type=float, nargs="+", default=[2.0, 5.0, 10.0],
                   help="context: seconds of the stream's past scores (at the daemon's 0.5 s hop)")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.5, 1.0],
                   help="context: how much of the past median is taken off")
    p.add_argument("--crop", type=int, default=0,
                   help="sfxtaps: also the CNN on the lowest CROP mel bands only (72: what 16 kHz audio fills)")
    p.add_argument("--lag", type=int, nargs="+", default=[1, 2], help="flux: frames over which a band's rise is taken")
    p.add_argument("--copies", type=int, default=2, help="sfxoe: synthetic copies of the training audio")
    p.add_argument("--every-s", type=float, default=1.5, help="sfxoe: one synthetic sound per this many seconds")
    p.add_argument("--hidden", type=int, nargs="+", default=[0, 64], help="sfxoe: hidden units (0: linear)")
    p.add_argument("--oe-steps", type=int, default=300, help="sfxoe: Adam steps of the classifier")
    p.add_argument("--knn-weight", type=float, default=0.5, help="sfxoe: the CNN distance's weight beside the default")
    a = p.parse_args(argv)
    from scenes_offline_sfx import sfxgauss, sfxoe, sfxtaps  # (they use this module's helpers)

    time0 = time.monotonic()
    {"cache": cache, "nmf": nmf, "context": context, "flux": flux, "sfxtaps": sfxtaps, "sfxoe": sfxoe, "sfxgauss": sfxgauss}[a.what](a)
    print(f"{time.monotonic() - time0:.0f} s")


if __name__ == "__main__":
    main()
