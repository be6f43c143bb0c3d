"""The per-scene benchmark's history study keeps the test part and its events, and shortens only
the training part (to its last S seconds)."""
from __future__ import annotations

import numpy as np

from streamad.benchmarks import scenes as S


def test_history_limit_trains_on_the_last_seconds_before_the_same_cut():
    sig = np.arange(S.SR * 40, dtype=np.float32)
    full, short = S.Scene("s", "dev", sig), S.Scene("s", "dev", sig)
    S.plan_events(full, n_events=5, min_events=8, seed=0)
    S.plan_events(short, n_events=5, min_events=8, seed=0, history_s=5.0)
    assert full.cut == short.cut == int(len(sig) * S.TRAIN_FRAC)
    assert np.array_equal(full.test, short.test) and full.plan == short.plan and full.mix_seed == short.mix_seed
    assert len(full.train) == full.cut and len(short.train) == 5 * S.SR
    assert short.train[-1] == full.train[-1] == sig[full.cut - 1]
    longer = S.Scene("s", "dev", sig)
    S.plan_events(longer, n_events=5, min_events=8, seed=0, history_s=1000.0)  # more than there is: all of it
    assert np.array_equal(longer.train, full.train)


def test_history_report_puts_the_runs_beside_the_full_history_of_the_same_scenes(tmp_path):
    """scenes_history: one point per (history, preset), the full-history point from the benchmark's
    own rows of the same scenes only, a table and a PNG."""
    import json
    from pathlib import Path

    from streamad.benchmarks import scenes_history as H

    full = Path(__file__).resolve().parents[1] / "docs" / "eval" / "scenes" / "results.json"
    rows = [r for r in json.loads(full.read_text())["rows"] if r["preset"] == "default"][:2]
    run = tmp_path / "h10"
    run.mkdir()
    short = [dict(r, history_s=10.0, mean_auc=0.5) for r in rows]
    (run / "results.json").write_text(json.dumps({"settings": {"history_s": 10.0}, "rows": short}))
    assert H.main(["--full", str(full), "--runs", str(run), "--out", str(tmp_path / "out")]) == 0
    res = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [(q["history_s"], q["preset"]) for q in res["points"]] == [(10.0, "default"), (None, "default")]
    assert res["points"][0]["summary"]["mean_auc"] == 0.5
    assert res["points"][1]["summary"]["scenes"] == 2 and res["points"][1]["summary"]["mean_auc"] != 0.5
    assert (tmp_path / "out" / "history.png").stat().st_size > 1000
    assert "| default | 10 s | 0.500 |" in H.table(res)


def test_scene_table_shows_each_models_hearing_check_and_a_dash_for_rows_made_before_it():
    import json
    from pathlib import Path

    from streamad.benchmarks.scenes_report import scene_table

    full = Path(__file__).resolve().parents[1] / "docs" / "eval" / "scenes" / "results.json"
    old, new = [dict(r) for r in json.loads(full.read_text())["rows"] if r["preset"] == "gmm64"][:2]
    old.pop("hearing_check", None)
    new["hearing_check"] = 0.7345
    lines = scene_table([old, new]).splitlines()
    assert lines[0].endswith("| hearing check |") and lines[1].count("|") == lines[0].count("|")
    by_scene = {ln.split(" | ")[0].lstrip("| "): ln for ln in lines[2:]}
    assert by_scene[new["scene"]].endswith("| 0.735 |") and by_scene[old["scene"]].endswith("| — |")
