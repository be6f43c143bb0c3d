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
against steps of the training audio with generic synthetic sounds added, beside the CNN's nearest-neighbour distance.
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


def _taps(net, spec: torch.Tensor) -> dict[str, torch.Tensor]:
    """The CNN's feature maps after blocks 2, 3 and 4 of a (1, frames, 96) spectrogram: {name: (C, T, F)}."""
    x, out = spec.unsqueeze(1), {}
    for i, b in enumerate((net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4), 1):
        x = b(x, i < 4)
        if i >= 2:
            out[f"L{i}"] = x[0].float()
    return out


def _unit(f: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (cosine distances to a bank of unit rows are 1 - dot products)."""
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-9)


def _step_features(maps: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
    """Per time step features of each variant: {variant: ((T, D) unit rows, frames per step)}."""
    def bands(m: torch.Tensor, k: int) -> torch.Tensor:
        return torch.cat([c.mean(2) for c in m.chunk(k, dim=2)], 0).T

    l2, l3, l4 = maps["L2"], maps["L3"], maps["L4"]
    v = {"L4mean": (_unit(l4.mean(2).T), 8), "L4max": (_unit(l4.amax(2).T), 8),
         "L4b3": (_unit(bands(l4, 3)), 8), "L3mean": (_unit(l3.mean(2).T), 8), "L3b3": (_unit(bands(l3, 3)), 8),
         "L2mean": (_unit(l2.mean(2).T), 4)}
    v["L34"] = (_unit(torch.cat([v["L3mean"][0], v["L4mean"][0]], 1)), 8)
    sm = torch.nn.functional.avg_pool1d(l4.mean(2)[None], 3, 1, 1, count_include_pad=False)[0].T
    v["L4sm3"] = (_unit(sm), 8)
    return v


def _scene_audio(f: Path, scenes: dict, events: dict, seed: int) -> tuple[dict, Any, np.ndarray, float, int]:
    """A cached scene's record, the scene (its event plan made), its training audio, the gain the CNN hears
    it at (as ``frame_sfx`` sets it: 0.5 / the largest absolute sample) and the training audio's half."""
    c = pickle.loads(f.read_bytes())
    sc = scenes[f.stem]
    S.plan_events(sc, len(events[sc.split]), 8, seed)
    tr = sc.train.astype(np.float32)
    return c, sc, tr, 0.5 / max(float(np.abs(tr).max()), 1e-9), len(tr) // 2


def _step_windows(n: int, per: int, steps: int) -> list[np.ndarray]:
    """The CNN steps (``per`` of its 1024-sample frames at 44.1 kHz each) whose centre falls in each 1 s
    window of an n-sample 16 kHz signal at the cache's 0.125 s hop (the nearest step when none does)."""
    win, fine = S.SR, S.SR // 8
    centre = (np.arange(steps) * per + (per - 1) / 2) * 1024 / 44100 * S.SR
    out = []
    for s0 in range(0, n - win + 1, fine):
        idx = np.nonzero((centre >= s0) & (centre < s0 + win))[0]
        out.append(idx if len(idx) else np.array([min(steps - 1, int(s0 / (per * 1024 / 44100 * S.SR)))]))
    return out


def _bank(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A bank of at most 4 000 of the steps ``x``, drawn without replacement."""
    return x[torch.from_numpy(rng.choice(len(x), min(4000, len(x)), replace=False))]


def sfxtaps(a: argparse.Namespace) -> None:
    """Which of the sound-effects CNN's layers and poolings hears events in scenes best (whole-signal
    features, as the first offline look at the CNN: each window's score is the worst of the steps whose
    centre falls in it, a step's score its cosine distance to the nearest of a bank of 4 000 training
    steps); alone and added to the cached default's score after standardisation on out-of-fold
    training windows (two halves)."""
    from streamad.evaluation.mixing import window_labels
    from streamad.models.sfx_net import SFXFeatures

    torch.set_num_threads(a.threads)
    files = _cached(a)
    scenes = {sc.name: sc for sc in S.load_scenes(a.data, [f.stem for f in files], a.split)}
    events = S.load_events(a.data)
    sfx = SFXFeatures(S.SR, "bfloat16")
    fine = S.SR // 8  # the cache's windows: 1 s at a 0.125 s hop
    rows = []

    def feats(sig: np.ndarray, gain: float) -> dict[str, tuple[torch.Tensor, int]]:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            spec = sfx.spectrogram(torch.from_numpy(sig[None].astype(np.float32)) * gain)
            maps = _taps(sfx.net, spec)
            out = _step_features(maps)
            if a.crop:  # the bands a 16 kHz signal can fill (below 8 kHz: 72 of 96), the rest never computed
                out["L4crop"] = (_unit(_taps(sfx.net, spec[:, :, :a.crop])["L4"].mean(2).T), 8)
                out["L4low"] = (_unit(maps["L4"][:, :, :a.crop // 8].mean(2).T), 8)  # the same net, its low positions
            return out

    def wscore(f: torch.Tensor, per: int, n: int, bank: torch.Tensor) -> np.ndarray:
        d = (1.0 - (f @ bank.T).max(1).values).numpy()
        return np.array([d[i].max() for i in _step_windows(n, per, len(f))])

    with bar(len(files), "sfxtaps", "scene") as pb:
        for f in files:
            c, sc, tr, gain, h = _scene_audio(f, scenes, events, a.seed)
            ftr, fa, fb = feats(tr, gain), feats(tr[:h], gain), feats(tr[h:], gain)
            fneg = feats(sc.test, gain)
            mixes = {ebr: S.mixes(sc, events[sc.split], ebr) for ebr in S.EBRS}
            fpos = {ebr: [(feats(sig, gain), len(sig), ivs) for sig, ivs in mx] for ebr, mx in mixes.items()}
            row = {"scene": f.stem, "default": mean_auc(c["pos"], c["neg"])}
            rng = np.random.default_rng(a.seed)
            for name, (ft, per) in ftr.items():
                bank, ba, bb = (_bank(x, rng) for x in (ft, fa[name][0], fb[name][0]))
                oof = np.r_[wscore(fa[name][0], per, h, bb), wscore(fb[name][0], per, len(tr) - h, ba)]
                center, scale = robust_center_scale(oof, fallback=1.0)
                neg = (wscore(fneg[name][0], per, len(sc.test), bank) - center) / scale
                pos = {}
                for ebr, items in fpos.items():
                    ps = []
                    for fs, n, ivs in items:
                        s = wscore(fs[name][0], per, n, bank)
                        st = np.arange(len(s)) * fine / S.SR
                        ps.append(s[window_labels(st, st + 1.0, ivs) == 1])
                    pos[ebr] = (np.concatenate(ps) - center) / scale
                if any(len(pos[e]) != len(c["pos"][e]) for e in pos) or len(neg) != len(c["neg"]):
                    sys.exit(f"scenes_offline: {f.stem}: windows differ from the cache's")
                row[name] = mean_auc(pos, neg)
                for w in a.weight:
                    row[f"{name}+{w:g}"] = mean_auc({e: c["pos"][e] + w * pos[e] for e in pos}, c["neg"] + w * neg)
            _report(rows, row)
            pb.update(1)
    _summary(rows)


def _place_sounds(sig: np.ndarray, rng: np.random.Generator, every_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``sig`` with one generic synthetic sound (streamad.windows.synthetic) about every ``every_s`` seconds,
    each at -12 ... +6 dB to the RMS of the second of background around it; (copy, [(start_s, end_s)])."""
    from streamad.windows.synthetic import EBR_DB, level_gain, synthetic_sound

    out, ivs = sig.astype(np.float32).copy(), []
    step = int(every_s * S.SR)
    for s0 in range(0, len(sig) - S.SR, step):
        x = synthetic_sound(rng, S.SR, S.SR)
        at = min(s0 + int(rng.integers(0, max(1, step - len(x)))), len(sig) - len(x))
        x = x * level_gain(x, sig[max(0, at - S.SR // 2): at + S.SR // 2], rng.uniform(*EBR_DB))
        end = min(len(out), at + len(x))
        out[at:end] += x[:end - at]
        ivs.append((at / S.SR, end / S.SR))
    return out, ivs


class _StepClassifier:
    """A small classifier of CNN steps: normal (0) against steps that hold a synthetic sound (1)."""

    def __init__(self, hidden: int, steps: int, seed: int):
        self.hidden, self.steps, self.seed = hidden, steps, seed

    def fit(self, neg: torch.Tensor, pos: torch.Tensor) -> "_StepClassifier":
        self.mu, self.sd = neg.mean(0), neg.std(0).clamp_min(1e-4)
        torch.manual_seed(self.seed)
        d = neg.shape[1]
        self.net = (torch.nn.Linear(d, 1) if self.hidden == 0 else
                    torch.nn.Sequential(torch.nn.Linear(d, self.hidden), torch.nn.ReLU(), torch.nn.Linear(self.hidden, 1)))
        opt = torch.optim.Adam(self.net.parameters(), 1e-3, weight_decay=1e-3)
        g = torch.Generator().manual_seed(self.seed)
        b = 256
        y = torch.cat([torch.zeros(b), torch.ones(b)])
        xn, xp = (neg - self.mu) / self.sd, (pos - self.mu) / self.sd
        with torch.enable_grad():
            for _ in range(self.steps):
                x = torch.cat([xn[torch.randint(len(xn), (b,), generator=g)], xp[torch.randint(len(xp), (b,), generator=g)]])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(x)[:, 0], y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self

    def __call__(self, f: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.net((f - self.mu) / self.sd)[:, 0].numpy()


def _sfx_steps_driver(a: argparse.Namespace, name: str, extra: Callable[..., None]) -> None:
    """The per-scene loop of ``sfxoe`` and ``sfxgauss``: the CNN's step features (last block averaged over
    frequency, unit rows: what ``sfx_top`` uses) of the training audio (all, and its two halves), the pure
    test part and every event mixture; the CNN's nearest-neighbour distance (``knn``, what ``frame_sfx``
    adds, at ``--knn-weight`` beside the cached default: ``d+knn``); then ``extra(row, ctx)`` adds the
    candidate's columns. ``ctx.comp(oof, score)`` standardises a step-score function on out-of-fold
    training windows and returns its (event, test) window scores; ``ctx.wmax`` pools steps to windows."""
    from types import SimpleNamespace

    from streamad.evaluation.mixing import window_labels
    from streamad.models.sfx_net import SFXFeatures

    torch.set_num_threads(a.threads)
    files = _cached(a)
    scenes = {sc.name: sc for sc in S.load_scenes(a.data, [f.stem for f in files], a.split)}
    events = S.load_events(a.data)
    sfx = SFXFeatures(S.SR, "bfloat16")
    fine = S.SR // 8
    step_s = 8 * 1024 / 44100
    rows: list[dict] = []

    def feats(sig: np.ndarray, gain: float) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            spec = sfx.spectrogram(torch.from_numpy(sig[None].astype(np.float32)) * gain)
            return _unit(_taps(sfx.net, spec)["L4"].mean(2).T)

    def wmax(d: np.ndarray, n: int) -> np.ndarray:
        """Each 1 s window (0.125 s hop) of an n-sample signal: the worst of its steps."""
        return np.array([d[i].max() for i in _step_windows(n, 8, len(d))])

    with bar(len(files), name, "scene") as pb:
        for f in files:
            c, sc, tr, gain, h = _scene_audio(f, scenes, events, a.seed)
            rng = np.random.default_rng(a.seed)
            fa, fb, ftr = feats(tr[:h], gain), feats(tr[h:], gain), feats(tr, gain)
            fneg = feats(sc.test, gain)
            items = {ebr: [(feats(sig, gain), len(sig), ivs) for sig, ivs in S.mixes(sc, events[sc.split], ebr)]
                     for ebr in S.EBRS}

            def comp(oof: np.ndarray, score: Callable[[torch.Tensor], np.ndarray]) -> tuple[dict, np.ndarray]:
                center, scale = robust_center_scale(oof, fallback=1.0)
                neg = (wmax(score(fneg), len(sc.test)) - center) / scale
                pos = {}
                for ebr, its in items.items():
                    ps = []
                    for fs, n, ivs in its:
                        s = wmax(score(fs), n)
                        st = np.arange(len(s)) * fine / S.SR
                        ps.append(s[window_labels(st, st + 1.0, ivs) == 1])
                    pos[ebr] = (np.concatenate(ps) - center) / scale
                if any(len(pos[e]) != len(c["pos"][e]) for e in pos) or len(neg) != len(c["neg"]):
                    sys.exit(f"scenes_offline: {f.stem}: windows differ from the cache's")
                return pos, neg

            bank, ba, bb = (_bank(x, rng) for x in (ftr, fa, fb))

            def knn(bk: torch.Tensor) -> Callable[[torch.Tensor], np.ndarray]:
                return lambda fs: (1.0 - (fs @ bk.T).max(1).values).numpy()

            kpos, kneg = comp(np.r_[wmax(knn(bb)(fa), h), wmax(knn(ba)(fb), len(tr) - h)], knn(bank))
            row = {"scene": f.stem, "default": mean_auc(c["pos"], c["neg"]), "knn": mean_auc(kpos, kneg)}
            base = ({e: c["pos"][e] + a.knn_weight * kpos[e] for e in kpos}, c["neg"] + a.knn_weight * kneg)
            row["d+knn"] = mean_auc(*base)

            def added(label: str, pos: dict, neg: np.ndarray) -> None:
                """The candidate alone, and at each --weight beside the default and beside default + knn."""
                row[label] = mean_auc(pos, neg)
                for w in a.weight:
                    row[f"d+{label}*{w:g}"] = mean_auc({e: c["pos"][e] + w * pos[e] for e in pos}, c["neg"] + w * neg)
                    row[f"d+knn+{label}*{w:g}"] = mean_auc({e: base[0][e] + w * pos[e] for e in pos},
                                                          base[1] + w * neg)

            extra(row, SimpleNamespace(a=a, tr=tr, h=h, gain=gain, fa=fa, fb=fb, ftr=ftr, rng=rng, feats=feats,
                                       comp=comp, wmax=wmax, added=added, step_s=step_s))
            _report(rows, row)
            pb.update(1)
    _summary(rows)


def sfxoe(a: argparse.Namespace) -> None:
    """Outlier exposure on the sound-effects CNN's steps (2026-12-05): per scene, a classifier of the
    CNN's step features trained on the training audio against copies of it with a generic synthetic sound
    about every 1.5 s (no recorded event); a window scored by its worst step's logit. Alone, and added to
    the cached default's score beside the CNN's nearest-neighbour distance (what ``frame_sfx`` adds), each
    standardised on out-of-fold training windows (two halves)."""
    def exposed(x: Any, sig: np.ndarray) -> torch.Tensor:
        """The steps of ``a.copies`` synthetic copies of ``sig`` that overlap a sound."""
        out = []
        for _ in range(a.copies):
            y, ivs = _place_sounds(sig, x.rng, a.every_s)
            f = x.feats(y, x.gain)
            t0 = np.arange(len(f)) * x.step_s
            hit = np.zeros(len(f), bool)
            for s, e in ivs:
                hit |= (t0 < e) & (t0 + x.step_s > s)
            out.append(f[torch.from_numpy(hit)])
        return torch.cat(out)

    def extra(row: dict, x: Any) -> None:
        xa, xb = exposed(x, x.tr[:x.h]), exposed(x, x.tr[x.h:])
        for hidden in a.hidden:
            ca = _StepClassifier(hidden, a.oe_steps, a.seed).fit(x.fa, xa)
            cb = _StepClassifier(hidden, a.oe_steps, a.seed).fit(x.fb, xb)
            call = _StepClassifier(hidden, a.oe_steps, a.seed).fit(x.ftr, torch.cat([xa, xb]))
            x.added(f"oe{hidden}", *x.comp(np.r_[x.wmax(cb(x.fa), x.h), x.wmax(ca(x.fb), len(x.tr) - x.h)], call))

    _sfx_steps_driver(a, "sfxoe", extra)


def sfxgauss(a: argparse.Namespace) -> None:
    """The CNN's steps scored by their Mahalanobis distance to one shrunk Gaussian of the training steps
    (2026-12-05, twenty-fourth session), instead of / beside the nearest-neighbour distance."""
    from streamad.models.frame_sfx import shrunk_gaussian

    def gauss(f: torch.Tensor) -> Callable[[torch.Tensor], np.ndarray]:
        """frame_sfx's sfx_gauss distance of steps, the Gaussian fitted on ``f``."""
        mean, whiten = shrunk_gaussian(f.float())
        return lambda fs: ((fs.float() - mean) @ whiten).norm(dim=1).numpy()

    def extra(row: dict, x: Any) -> None:
        ga, gb, gall = gauss(x.fa), gauss(x.fb), gauss(x.ftr)
        x.added("gauss", *x.comp(np.r_[x.wmax(gb(x.fa), x.h), x.wmax(ga(x.fb), len(x.tr) - x.h)], gall))

    _sfx_steps_driver(a, "sfxgauss", extra)

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
    time0 = time.monotonic()
    {"cache": cache, "nmf": nmf, "context": context, "flux": flux, "sfxtaps": sfxtaps, "sfxoe": sfxoe, "sfxgauss": sfxgauss}[a.what](a)
    print(f"{time.monotonic() - time0:.0f} s")


if __name__ == "__main__":
    main()
