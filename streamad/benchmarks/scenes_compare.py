"""Two presets of the per-scene benchmark side by side, with how sure the difference is.

A mean over 25 scenes moves by a few thousandths when one scene changes, and the pooled false-alert
rate of the pure test parts is a count of one to four alerts; a rule that compares point figures
decides on noise. For each split both presets ran on (same scenes, same event plan):

* mean AUC and F1 differences, paired per scene, with a 95 % bootstrap interval over scenes (the
  scenes resampled with replacement, seeded) and how many scenes went up / down;
* the false alerts of the pure test parts as counts: the same audio for both, so under equal rates
  the first preset's share of all alerts is Binomial(total, 1/2); the exact two-sided p-value.

    python -m streamad.benchmarks.audio_eval --protocol scenes --compare default,sfx4c
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _paired(a: dict[str, dict], b: dict[str, dict], key: str, rounds: int, seed: int) -> dict[str, Any]:
    scenes = sorted(set(a) & set(b))
    d = np.array([b[s][key] - a[s][key] for s in scenes], dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean_a": float(np.mean([a[s][key] for s in scenes])), "mean_b": float(np.mean([b[s][key] for s in scenes])),
            "diff": float(d.mean()), "ci95": [float(lo), float(hi)], "up": int((d > 0).sum()), "down": int((d < 0).sum())}


def compare(rows: list[dict[str, Any]], a: str, b: str, rounds: int = 10000, seed: int = 0) -> dict[str, Any]:
    """{split: figures} for presets ``a`` (reference) and ``b`` over the scenes both have."""
    from scipy.stats import binomtest

    out: dict[str, Any] = {}
    for split in ("dev", "held-out"):
        ra = {r["scene"]: r for r in rows if r["preset"] == a and r["split"] == split}
        rb = {r["scene"]: r for r in rows if r["preset"] == b and r["split"] == split}
        common = sorted(set(ra) & set(rb))
        if not common:
            continue
        na = sum(ra[s]["fa_pure"]["alerts"] for s in common)
        nb = sum(rb[s]["fa_pure"]["alerts"] for s in common)
        p = float(binomtest(nb, na + nb, 0.5).pvalue) if na + nb else 1.0
        hours = sum(ra[s]["fa_pure"]["seconds"] for s in common) / 3600
        out[split] = {"scenes": len(common), "auc": _paired(ra, rb, "mean_auc", rounds, seed),
                      "f1": _paired(ra, rb, "mean_f1", rounds, seed),
                      "fa_pure": {"alerts_a": na, "alerts_b": nb, "hours": hours, "p_equal_rates": p}}
    return out


def table(res: dict[str, Any], a: str, b: str) -> str:
    lines = [f"| split | scenes | mean AUC {a} → {b} (Δ, 95 % CI; scenes up / down) | mean F1 {a} → {b} (same) "
             f"| false alerts, pure test parts ({a} / {b}; p, equal rates) |", "|---|---|---|---|---|"]
    for split, r in res.items():
        cells = []
        for k in ("auc", "f1"):
            x = r[k]
            cells.append(f"{x['mean_a']:.3f} → {x['mean_b']:.3f} ({x['diff']:+.3f}, {x['ci95'][0]:+.3f} … "
                         f"{x['ci95'][1]:+.3f}; {x['up']} / {x['down']})")
        f = r["fa_pure"]
        lines.append(f"| {split} | {r['scenes']} | {cells[0]} | {cells[1]} | {f['alerts_a']} / {f['alerts_b']} in "
                     f"{f['hours'] * 60:.0f} min (p = {f['p_equal_rates']:.2f}) |")
    return "\n".join(lines) + "\n"
