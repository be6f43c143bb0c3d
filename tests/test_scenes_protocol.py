"""The per-scene benchmark's history study keeps the test part and its events, and shortens only
the training part (to its last S seconds)."""
from __future__ import annotations

import numpy as np
import pytest

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


def test_pooled_false_alerts_carry_their_count_and_a_poisson_interval():
    import json
    from pathlib import Path

    from streamad.benchmarks.scenes_report import summary_table

    # exact (Garwood) 95 % limits, known values: 0 -> [0, 3.689], 3 -> [0.619, 8.767]
    assert S.poisson_interval(0) == (0.0, pytest.approx(3.6889, abs=1e-3))
    lo, hi = S.poisson_interval(3)
    assert lo == pytest.approx(0.6187, abs=1e-3) and hi == pytest.approx(8.7673, abs=1e-3)
    full = Path(__file__).resolve().parents[1] / "docs" / "eval" / "scenes" / "results.json"
    rows = [r for r in json.loads(full.read_text())["rows"] if r["preset"] == "default" and r["split"] == "held-out"]
    s = S.summarise(rows)
    hours = sum(r["fa_pure"]["seconds"] for r in rows) / 3600
    n = sum(r["fa_pure"]["alerts"] for r in rows)
    assert s["fa_pure_alerts"] == n and s["fa_pure_per_hour"] == pytest.approx(n / hours)
    assert s["fa_pure_per_hour_95"][0] < s["fa_pure_per_hour"] < s["fa_pure_per_hour_95"][1]
    line = summary_table({"summary": {"default": {"held-out": s}}}).splitlines()[2]
    assert f"; {n} alerts, 95 % " in line and line.count("|") == summary_table({"summary": {}}).splitlines()[0].count("|")


def test_compare_pairs_the_scenes_of_two_presets_and_tests_their_false_alert_counts():
    from streamad.benchmarks.scenes_compare import compare, table

    def row(preset, scene, auc, f1, alerts, split="dev"):
        return {"preset": preset, "scene": scene, "split": split, "mean_auc": auc, "mean_f1": f1,
                "fa_pure": {"alerts": alerts, "seconds": 60.0}}

    rows = [row("a", f"s{i}", 0.80 + 0.01 * i, 0.5, 3 if i < 2 else 0) for i in range(6)]
    rows += [row("b", f"s{i}", 0.82 + 0.01 * i, 0.5 - 0.1 * (i == 0), 0) for i in range(6)]
    rows += [row("b", "only_b", 0.1, 0.1, 9), row("a", "h0", 0.9, 0.9, 0, "held-out")]  # unpaired: ignored
    res = compare(rows, "a", "b", rounds=2000)
    assert list(res) == ["dev"] and res["dev"]["scenes"] == 6
    auc, f1, fa = res["dev"]["auc"], res["dev"]["f1"], res["dev"]["fa_pure"]
    assert auc["diff"] == pytest.approx(0.02) and auc["ci95"] == pytest.approx([0.02, 0.02]) and (auc["up"], auc["down"]) == (6, 0)
    assert f1["diff"] == pytest.approx(-0.1 / 6) and f1["ci95"][0] < f1["diff"] < f1["ci95"][1] + 1e-12
    assert (f1["up"], f1["down"]) == (0, 1)
    # 6 alerts against 0 on the same 6 minutes: two-sided exact binomial p = 2 / 2**6
    assert (fa["alerts_a"], fa["alerts_b"]) == (6, 0) and fa["p_equal_rates"] == pytest.approx(2 / 64)
    assert "| dev | 6 | 0.825 → 0.845 (+0.020" in table(res, "a", "b")


def test_presets_drop_the_shipped_weight_choice_with_the_weights_it_is_an_alternative_to():
    from streamad.benchmarks.scenes_run import preset_cfg, shipped

    choice = shipped()["model"]["score_weights_choice"]
    assert choice and preset_cfg("default", {}).model.score_weights_choice == [
        {k: float(v) for k, v in c.items()} for c in choice]
    assert preset_cfg("mix", {"mix": {"audio": {"train_mix": 4}}}).model.score_weights_choice  # weights untouched: kept
    for name, over in (("gmm64", {}), ("local8", {}), ("w", {"w": {"model": {"score_weights": {"nll": 1}}}}),
                       ("p", {"p": {"model": {"params": {"diag_k": 8}}}})):
        assert preset_cfg(name, over).model.score_weights_choice == []
    own = [{"nll": 2.0}]
    assert preset_cfg("o", {"o": {"model": {"score_weights": {"nll": 1}, "score_weights_choice": own}}}).model.score_weights_choice == own
    prev = preset_cfg("local8", {}).model
    assert "band_top" not in prev.params and prev.params["local_k"] == 8


def test_the_shipped_cnn_config_is_the_one_the_benchmark_measured():
    """configs/audio-sfx.yaml is preset sfx4c of the per-scene benchmark (docs/EVAL.md): the same audio,
    model, train and alert settings, whatever else the file leaves to the schema."""
    import dataclasses
    import json
    from pathlib import Path

    from streamad.benchmarks.scenes_run import preset_cfg
    from streamad.config import load

    root = Path(__file__).resolve().parents[1]
    measured = json.loads((root / "docs" / "eval" / "scenes" / "results.json").read_text())["presets"]["sfx4c"]
    bench = preset_cfg("sfx4c", {"sfx4c": measured})
    shipped = load(root / "configs" / "audio-sfx.yaml")
    assert shipped.model.detector == "frame_sfx" and shipped.audio.context_s == 0.5
    for sec in ("audio", "alerts"):
        assert dataclasses.asdict(getattr(shipped, sec)) == dataclasses.asdict(getattr(bench, sec)), sec
    for key in ("detector", "params", "score_weights", "score_weights_choice"):
        assert getattr(shipped.model, key) == getattr(bench.model, key), key
    tr, bt = dataclasses.asdict(shipped.train), dataclasses.asdict(bench.train)
    assert {k: v for k, v in tr.items() if k != "threads"} == {k: v for k, v in bt.items() if k != "threads"}


def test_the_default_escalates_to_the_cnn_config_the_benchmark_measured_and_older_presets_do_not_escalate():
    """configs/audio.yaml's train.escalate_to makes exactly preset sfx4c (= configs/audio-sfx.yaml) of the
    default, so a per-scene row of the default is the sfx4c row where the hearing check is below the bar
    (docs/EVAL.md, "Escalation"); presets of another model or front end (all rows before it) do not
    escalate unless they say so, presets of training or alert settings keep the shipped escalation."""
    import dataclasses
    import json
    from pathlib import Path

    from streamad.benchmarks.scenes_run import preset_cfg
    from streamad.config import escalated

    root = Path(__file__).resolve().parents[1]
    measured = json.loads((root / "docs" / "eval" / "scenes" / "results.json").read_text())["presets"]["sfx4c"]
    bench, default = preset_cfg("sfx4c", {"sfx4c": measured}), preset_cfg("default", {})
    esc = escalated(default)
    assert default.train.escalate_below == 0.85 and esc is not None
    for sec in ("audio", "model", "train", "alerts"):
        assert dataclasses.asdict(getattr(esc, sec)) == dataclasses.asdict(getattr(bench, sec)), sec
    for name, over in (("local8", {}), ("gmm64", {}), ("a", {"a": {"audio": {"train_mix": 4}}}),
                       ("sfx4c", {"sfx4c": measured})):
        assert preset_cfg(name, over).train.escalate_to is None, name
    assert preset_cfg("t", {"t": {"alerts": {"target_false_alerts_per_hour": 10}}}).train.escalate_to is not None
    own = {"model": {"detector": "frame_gmm", "params": {}, "score_weights": {}}}
    assert preset_cfg("o", {"o": {"model": {"params": {"diag_k": 4}}, "train": {"escalate_to": own}}}).train.escalate_to == own
