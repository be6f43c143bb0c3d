"""Shared fixtures: one real broker process per session, real recordings from ../shared/data."""
from __future__ import annotations

import fcntl
import os
import uuid
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module="kafka")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMAD_DATA", ROOT.parent / "shared" / "data"))
AMBIENT = DATA / "audio" / "ambient"
BABYCRY = DATA / "audio" / "babycry"
GLASS = DATA / "audio" / "glass-sfx"


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)  # tests run beside daemon subprocesses: avoid thread oversubscription


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not AMBIENT.is_dir():
        raise RuntimeError(f"shared data not found at {DATA} (set STREAMAD_DATA)")
    return DATA


@pytest.fixture(scope="session")
def broker():
    from streamad.broker import EmbeddedBroker

    b = EmbeddedBroker().start()
    yield b
    b.stop()


@pytest.fixture
def unique():
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def ambient_files(data_dir) -> list[Path]:
    return sorted(AMBIENT.glob("*.wav"))


@pytest.fixture(scope="session")
def audio_model(tmp_path_factory, ambient_files) -> Path:
    """A small GMGAN trained on 12 real ambient recordings (2 minutes), used by CLI and daemon tests.

    Trained once per test run: with pytest-xdist (``make test`` runs two workers) the first worker
    trains it under a file lock and the others load the same directory.
    ``STREAMAD_TEST_AUDIO_MODEL=DIR`` uses a model trained the same way before (iterating on tests)."""
    if os.environ.get("STREAMAD_TEST_AUDIO_MODEL"):
        return Path(os.environ["STREAMAD_TEST_AUDIO_MODEL"])
    from streamad.config import from_dict
    from streamad.train import load_recordings, train_model

    def train(out: Path) -> None:
        cfg = from_dict({"model": {"detector": "gmgan", "params": {"steps": 100}},
                         "train": {"train_hop_s": 0.25}})
        train_model(cfg, load_recordings(cfg, ambient_files[0::4][:12]), out, show_progress=False)

    return once_per_run(tmp_path_factory, "audio-model", train)


def once_per_run(tmp_path_factory, name: str, build) -> Path:
    """``build(dir)`` run by one pytest process of the run (xdist workers share a base temp dir);
    the others wait on the lock and reuse the result. Without xdist: a fresh temp dir."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.mktemp(name) / name
        build(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent  # common to every worker of this run
    out, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            build(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def heldout_ambient(ambient_files) -> list[Path]:
    """Ambient recordings the session model never saw."""
    return ambient_files[2::4][:6]


@pytest.fixture(scope="session")
def sensor_model(tmp_path_factory, data_dir):
    """A frame-GMM series model on the first 400 readings of a real SKAB sensor file (seconds to train)."""
    from streamad.config import load
    from streamad.io.seriesfiles import load_series_files
    from streamad.train import Recording, train_model

    skab = load_series_files([DATA / "series" / "skab" / "data" / "valve1" / "0.csv"], time_column="datetime",
                             label_column="anomaly")[0]
    cfg = load(ROOT / "configs" / "sensor.yaml")
    cfg.model.detector, cfg.model.params, cfg.train.threads = "frame_gmm", {}, 1
    out = tmp_path_factory.mktemp("sensor-model") / "sensor"
    train_model(cfg, [Recording("skab-prefix", skab.values[:400], skab.channels)], out, show_progress=False)
    return out, skab
