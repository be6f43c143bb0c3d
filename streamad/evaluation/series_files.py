"""``streamad eval --series``: labelled CSV series and/or WFDB records with beat annotations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from streamad.evaluation.ecg import evaluate_ecg_beats
from streamad.evaluation.series import evaluate_series, write_nab_csvs
from streamad.io.files import InputError
from streamad.kinds import kind_of
from streamad.model import AnomalyModel


def eval_series_files(model_dir: str | Path, files: list[str], nab_out: str | Path | None = None,
                      device: str = "cpu", row_rule: str = "cover", beats_from_s: float = 0.0,
                      **load_opts: Any) -> dict[str, Any]:
    model = AnomalyModel.load(model_dir, device=device)
    if model.cfg.kind != "series":
        raise InputError(f"{model_dir}: --series needs a series model (this one is {model.cfg.kind})")
    recs = kind_of(model.cfg).load(model.cfg, files, channels=model.cfg.series.channels or None, **load_opts)
    res: dict[str, Any] = {"model": model.version, "detector": model.name, "threshold": model.threshold}
    labelled = [r for r in recs if r.source.labels is not None]
    if labelled:
        res["series"] = evaluate_series(model, labelled, row_rule=row_rule)
        if nab_out:
            res["nab_csvs"] = [str(p) for p in write_nab_csvs(model, labelled, nab_out, row_rule=row_rule)]
    beats = [r for r in recs if r.source.beats is not None]
    if beats:
        res["beats"] = {r.name: evaluate_ecg_beats(model, r, start=int(beats_from_s * r.source.rate_hz))
                        for r in beats}
    if not labelled and not beats:
        raise InputError("eval: no labels in these series (give --label-column, or WFDB records with .atr beats)")
    return res
