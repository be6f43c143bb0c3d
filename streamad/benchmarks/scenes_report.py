"""Tables and ROC plots of the per-scene benchmark (results.json -> RESULTS.md, roc/<scene>.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SPLITS = ("dev", "held-out", "all")


def _fa(s: dict[str, Any], k: str) -> str:
    """Pooled false alerts per hour (scenes above 1/h); with the alert count and its 95 % Poisson
    interval where the summary has one (the pure test parts: :func:`scenes.summarise`): a rate made of a
    few alerts is uncertain by a factor of several."""
    out = f"{s[k + '_per_hour']:.1f} ({s[k + '_scenes_over_1h']})"
    if k + "_per_hour_95" in s:
        lo, hi = s[k + "_per_hour_95"]
        n = s[k + "_alerts"]
        out += f"; {n} alert{'' if n == 1 else 's'}, 95 % {lo:.1f}–{hi:.1f}"
    return out


def summary_table(doc: dict[str, Any]) -> str:
    lines = ["| detector | scenes | mean AUC (−6 / 0 / +6 dB) | min AUC (scene) | < 0.90 | mean pAUC "
             "| mean event F1 (−6 / 0 / +6) | FA/h pure (scenes > 1/h; alerts, 95 % interval) | FA/h looped (scenes > 1/h) | looped time in alert | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, by in doc["summary"].items():
        for sp in SPLITS:
            s = by.get(sp)
            if not s:
                continue
            lines.append(
                f"| {p} | {sp} ({s['scenes']}) | **{s['mean_auc']:.3f}** ({s['auc_-6']:.3f} / {s['auc_0']:.3f} / "
                f"{s['auc_6']:.3f}) | {s['min_auc']:.3f} ({s['worst_scene']}) | {s['scenes_below_0.90']} | "
                f"{s['mean_pauc']:.3f} | **{s['mean_f1']:.3f}** ({s['f1_-6']:.2f} / {s['f1_0']:.2f} / "
                f"{s['f1_6']:.2f}) | {_fa(s, 'fa_pure')} | {_fa(s, 'fa_loop')} | {s.get('fa_loop_alert_time', 0):.1%} | "
                f"{s['mean_train_s']:.1f} |")
    return "\n".join(lines) + "\n"


def scene_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| scene | split | train / test s | AUC −6 / 0 / +6 | mean AUC | mean pAUC | F1 −6 / 0 / +6 "
             "| FA pure | FA looped (/h, time in alert) | train s | hearing check |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["split"], r["scene"])):
        pe = r["per_ebr"]
        auc = " / ".join(f"{pe[k]['auc']:.3f}" for k in ("-6", "0", "6"))
        f1 = " / ".join(f"{pe[k]['f1']:.2f}" for k in ("-6", "0", "6"))
        lines.append(f"| {r['scene']} | {r['split']} | {r['train_seconds']:.0f} / {r['test_seconds']:.0f} | {auc} | "
                     f"{r['mean_auc']:.3f} | {r['mean_pauc']:.3f} | {f1} | {r['fa_pure']['alerts']} | "
                     f"{r['fa_loop']['alerts']} ({r['fa_loop']['per_hour']:.0f}/h, {r['fa_loop'].get('alert_time_frac', 0):.0%}) | "
                     f"{r['train_s']:.0f} | {_hearing(r)} |")
    return "\n".join(lines) + "\n"


def _hearing(row: dict[str, Any]) -> str:
    """The model's hearing check (training's synthetic-sound ROC-AUC), or — for rows made before it existed;
    for an escalated model (``train.escalate_to``) the first model's check and the detector that replaced it."""
    v, esc = row.get("hearing_check"), row.get("escalated_from")
    if esc:
        return f"{esc['hearing_check_auc']:.3f} → {row.get('detector', 'escalated')} {'—' if v is None else f'{v:.3f}'}"
    return "—" if v is None else f"{v:.3f}"


def tables(doc: dict[str, Any]) -> str:
    st = doc["settings"]
    out = ["# Per-scene audio benchmark", "",
           f"Command: `{doc['command']}` (last run: {doc['wall_s_last_run'] / 60:.1f} min on this box).",
           *([""] + [f"- {c}" for c in doc["notes"]] if doc.get("notes") else []), "",
           f"Settings: train on the first {st['train_frac']:.0%} of each scene"
           + (f" (its last {st['history_s']:g} s only)" if st.get("history_s") else "")
           + f", >= {st['min_events']} events per "
           f"scene and EBR, looped held-out stream {st['loop_s'] / 3600:g} h per scene. Protocol: "
           "`streamad/benchmarks/scenes.py`; presets in `results.json`.", "",
           "AUC / pAUC / F1 are means over scenes of the per-scene mean over EBR −6 / 0 / +6 dB. FA/h pools "
           "the alerts of all scenes over all their audio; in brackets the number of scenes above 1 alert/h. "
           "An alert that never closes (cooldown) counts once, so the mean share of the looped hour spent "
           "in alert is shown too. The per-scene tables' hearing check is the model's training-time ROC-AUC "
           "of its held-back audio with generic synthetic sounds added (`train.hearing_check`, docs/EVAL.md; "
           "— for rows made before it existed).",
           "", "## Summary", "", summary_table(doc)]
    for p in doc["summary"]:
        out += [f"## {p}: per scene", "", scene_table([r for r in doc["rows"] if r["preset"] == p])]
    return "\n".join(out)


def plot_scene(rows: list[dict[str, Any]], path: Path) -> str:
    """One small PNG: the pooled-EBR ROC of each preset on one scene."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 3.6), dpi=70)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], "--", color="0.6", linewidth=1)
    for r in rows:
        xy = r["roc"]
        ax.plot([p[0] for p in xy], [p[1] for p in xy], linewidth=1.4,
                label=f"{r['preset']} (AUC {r['mean_auc']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate", fontsize=8)
    ax.set_ylabel("true positive rate", fontsize=8)
    ax.set_title(f"{rows[0]['scene']} ({rows[0]['split']})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")
    return str(path)
