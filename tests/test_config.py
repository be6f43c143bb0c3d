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
