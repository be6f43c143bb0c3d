import subprocess
import sys

import pytest

from streamad import config as C


def test_defaults_valid():
    cfg = C.from_dict({})
    assert cfg.kind == "audio" and cfg.model.detector == "gmgan"
    assert cfg.metrics.port == 0 and cfg.metrics.host == "127.0.0.1" and cfg.logging.format == "text"


def test_metrics_and_logging_sections():
    cfg = C.from_dict({"metrics": {"port": 9765, "host": "0.0.0.0", "ready_max_lag": 50, "stuck_after_s": 30},
                       "logging": {"format": "json"}})
    assert (cfg.metrics.port, cfg.metrics.host, cfg.metrics.ready_max_lag, cfg.metrics.stuck_after_s) == \
        (9765, "0.0.0.0", 50, 30.0)
    assert cfg.logging.format == "json"


def test_repo_configs_load():
    from tests.conftest import ROOT

    for p in sorted((ROOT / "configs").glob("*.yaml")):
        C.load(p)


@pytest.mark.parametrize("data,key", [
    ({"audio": {"sample_rate": "fast"}}, "audio.sample_rate"),
    ({"audio": {"hop_s": 2.0}}, "audio.hop_s"),
    ({"kafka": {"bogus": 1}}, "kafka.bogus"),
    ({"kind": "video"}, "kind"),
    ({"alerts": {"min_windows": 3, "of_windows": 2}}, "alerts.min_windows"),
    ({"model": {"params": []}}, "model.params"),
    ({"audio": {"window_s": -1}}, "audio."),
    ({"audio": {"context_s": -0.5}}, "audio.context_s"),
    ({"audio": {"context_s": 30}}, "audio.context_s"),
    ({"train": {"seed": -1}}, "train.seed"),
    ({"train": {"seed": 2 ** 32}}, "train.seed"),
    ({"metrics": {"port": 70000}}, "metrics.port"),
    ({"metrics": {"port": -1}}, "metrics.port"),
    ({"metrics": {"port": "9765"}}, "metrics.port"),
    ({"metrics": {"host": ""}}, "metrics.host"),
    ({"metrics": {"ready_max_lag": 0}}, "metrics.ready_max_lag"),
    ({"metrics": {"stuck_after_s": -5}}, "metrics.stuck_after_s"),
    ({"metrics": {"path": "/m"}}, "metrics.path"),
    ({"logging": {"format": "xml"}}, "logging.format"),
    ({"train": {"escalate_to": []}}, "train.escalate_to"),
    ({"train": {"escalate_to": {"kafka": {"group_id": "x"}}}}, "train.escalate_to.kafka"),
    ({"train": {"escalate_to": {"model": {"bogus": 1}}}}, "train.escalate_to: model.bogus"),
    ({"train": {"escalate_to": {"audio": {"hop_s": 5}}}}, "train.escalate_to: audio.hop_s"),
    ({"train": {"escalate_to": {"audio": {"sample_rate": 8000}}}}, "train.escalate_to.audio.sample_rate"),
    ({"train": {"escalate_to": {"model": {"detector": "frame_gmm"}}, "escalate_below": 0}}, "train.escalate_below"),
    ({"train": {"escalate_to": {"model": {"detector": "frame_gmm"}}, "hearing_check": False}}, "train.escalate_to"),
    ({"kind": "series", "train": {"escalate_to": {"model": {"detector": "frame_gmm"}}}}, "train.escalate_to"),
])
def test_errors_name_the_key(data, key):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(data)
    assert str(e.value).startswith(key)
    assert "\n" not in str(e.value)


def test_cli_config_error_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("audio:\n  n_mels: many\n")
    r = subprocess.run([sys.executable, "-m", "streamad.cli", "train", "--config", str(bad), "--normal",
                        str(tmp_path), "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "audio.n_mels" in r.stderr


def test_invalid_yaml_reports_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("audio:\n  n_mels: [1\n")
    with pytest.raises(C.ConfigError) as e:
        C.load(bad)
    assert "line" in str(e.value)


def test_readme_config_reference_matches_the_schema():
    """The README's reference is generated from streamad/config.py: every key has a meaning, and
    the README holds exactly what `python -m streamad.config_doc` prints."""
    from streamad import config_doc
    from tests.conftest import ROOT

    assert config_doc.undocumented() == []
    readme = (ROOT / "README.md").read_text()
    assert readme == config_doc.replace_section(readme, config_doc.reference()), \
        "README config reference is stale: run python -m streamad.config_doc --write README.md"
    for key in ("kafka.bootstrap_servers", "alerts.evidence_dir", "train.calibration", "metrics.port"):
        assert f"| `{key}` |" in readme


def test_escalated_config_overrides_the_model_sections_and_keeps_the_rest():
    """train.escalate_to: this config with its audio / model / train / alerts sections overridden (mappings
    merged, model params and score weights replaced whole), one step only (no escalation of its own)."""
    cfg = C.from_dict({"kafka": {"group_id": "g"}, "model": {"params": {"k": 3, "diag_k": 4}, "path": "m"},
                       "train": {"seed": 7, "escalate_below": 0.8,
                                 "escalate_to": {"audio": {"context_s": 0.5},
                                                 "model": {"detector": "frame_gmm", "params": {"k": 2}},
                                                 "alerts": {"cooldown_s": 5.0}}}})
    e = C.escalated(cfg)
    assert (e.model.detector, e.model.params, e.model.path) == ("frame_gmm", {"k": 2}, "m")
    assert (e.audio.context_s, e.audio.n_mels, e.alerts.cooldown_s) == (0.5, cfg.audio.n_mels, 5.0)
    assert (e.train.seed, e.train.escalate_to, e.kafka.group_id) == (7, None, "g")
    assert cfg.model.detector == C.ModelConfig().detector and cfg.audio.context_s == 0.0  # the original is untouched
    assert C.escalated(C.from_dict({})) is None
