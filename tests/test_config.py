import subprocess
import sys

import pytest

from streamad import config as C


def test_defaults_valid():
    cfg = C.from_dict({})
    assert cfg.kind == "audio" and cfg.model.detector == "gmgan"


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
