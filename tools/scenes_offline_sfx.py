"""The sound-effects CNN's offline looks of ``tools/scenes_offline.py`` (``sfxtaps``, ``sfxoe``, ``sfxgauss``):
the CNN's step features of each cached scene's training audio, test part and event mixtures, scored against the
training steps and added to the cached default's score. Run them through ``tools/scenes_offline.py``; its module
docstring says what each one tried and when."""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from scenes_offline import _cached, _report, _summary, mean_auc
from streamad.benchmarks import scenes as S
from streamad.progress import bar
from streamad.stats import robust_center_scale


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
