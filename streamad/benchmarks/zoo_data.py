"""Data and protocols of the detector-zoo benchmarks (``python -m streamad.benchmarks.zoo``).

* ``kdd99``: KDD Cup 99 10 % as in Zong et al. (DAGMM, ICLR 2018) and Zenati et al. (ALAD,
  ICDM 2018): the seven symbolic columns one-hot encoded (121 features); the "normal."
  traffic (19.7 %) is the *anomaly* class, attacks are the normal class; a random 50 % of
  the rows (seeded per run) is the training half, of which only normal-class rows are
  used; the other half is the test set; min-max scaling learned on the training rows.
* ``arrhythmia``: ODDS Arrhythmia, the same rule: random 50 % split, train on its
  inliers, test on the other half (~15 % outliers); min-max scaling from the training rows.
* ``mnist``: one-class MNIST (Ruff et al., ICML 2018): each digit normal in turn. Only the
  MNIST training set is available, so its last 10 000 images are a fixed held-out test
  part and training images come from the first 50 000. Images are zero-padded to 32x32,
  then global contrast normalisation (l1) and min-max scaling with the normal class's
  training minimum / maximum, as in the paper.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

KDD_COLUMNS = (
    "duration,protocol_type,service,flag,src_bytes,dst_bytes,land,wrong_fragment,urgent,hot,"
    "num_failed_logins,logged_in,num_compromised,root_shell,su_attempted,num_root,num_file_creations,"
    "num_shells,num_access_files,num_outbound_cmds,is_host_login,is_guest_login,count,srv_count,"
    "serror_rate,srv_serror_rate,rerror_rate,srv_rerror_rate,same_srv_rate,diff_srv_rate,"
    "srv_diff_host_rate,dst_host_count,dst_host_srv_count,dst_host_same_srv_rate,dst_host_diff_srv_rate,"
    "dst_host_same_src_port_rate,dst_host_srv_diff_host_rate,dst_host_serror_rate,"
    "dst_host_srv_serror_rate,dst_host_rerror_rate,dst_host_srv_rerror_rate,label").split(",")
KDD_ONE_HOT = ("protocol_type", "service", "flag", "land", "logged_in", "is_host_login", "is_guest_login")
MNIST_TEST_START = 50000  # images 50000..59999 of the training file: the fixed held-out part


@dataclass
class Split:
    """Training rows (y: 1 = labelled anomaly, only for outlier exposure) and a labelled test set."""
    X_train: torch.Tensor
    X_test: torch.Tensor
    y_test: np.ndarray
    y_train: torch.Tensor | None = None


def _minmax(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    lo, hi = train.min(0), train.max(0)
    scale = np.where(hi - lo > 0, hi - lo, 1.0)
    return [torch.from_numpy(((a - lo) / scale).astype(np.float32)) for a in (train, *others)]


@lru_cache(maxsize=2)
def kdd99_table(data: Path, nrows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features (494021, 121) float64, label: 1 = 'normal.' traffic = the anomaly class);
    ``nrows``: only the first rows of the file (tests; the benchmark reads all)."""
    import pandas as pd

    df = pd.read_csv(data / "tabular" / "kdd99" / "kddcup.data_10_percent.gz", header=None, names=KDD_COLUMNS,
                     nrows=nrows)
    y = (df.pop("label") == "normal.").to_numpy().astype(np.int64)
    df = pd.get_dummies(df, columns=list(KDD_ONE_HOT), dtype=np.float64)
    return df.to_numpy(dtype=np.float64), y


def _half_split(X: np.ndarray, y: np.ndarray, seed: int) -> Split:
    idx = np.random.default_rng(seed).permutation(len(X))
    tr, te = idx[: len(X) // 2], idx[len(X) // 2:]
    tr = tr[y[tr] == 0]
    X_train, X_test = _minmax(X[tr], X[te])
    return Split(X_train, X_test, y[te])


def kdd99(data: Path, seed: int, nrows: int | None = None) -> Split:
    X, y = kdd99_table(Path(data), nrows)
    return _half_split(X, y, seed)


def arrhythmia(data: Path, seed: int) -> Split:
    from scipy.io import loadmat

    m = loadmat(str(Path(data) / "tabular" / "odds" / "arrhythmia.mat"))
    return _half_split(m["X"].astype(np.float64), m["y"].ravel().astype(np.int64), seed)


@lru_cache(maxsize=1)
def mnist_raw(data: Path) -> tuple[np.ndarray, np.ndarray]:
    d = Path(data) / "tabular" / "mnist"
    with gzip.open(d / "train-images-idx3-ubyte.gz") as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(d / "train-labels-idx1-ubyte.gz") as f:
        lab = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return img, lab


def gcn_l1(img: np.ndarray) -> np.ndarray:
    """Zero-pad to 32x32, then global contrast normalisation with the l1 norm (per image)."""
    x = np.pad(img.astype(np.float64), ((0, 0), (2, 2), (2, 2)))
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return x / np.abs(x).mean(axis=(1, 2), keepdims=True)


def mnist(data: Path, digit: int, seed: int, n_train: int, n_test_per_class: int, n_exposure: int = 0) -> Split:
    """One-class split for ``digit``. Training images: ``n_train`` of the digit (seeded draw
    from the first 50 000); with ``n_exposure`` > 0 also that many images of the other
    digits, labelled y = 1 (outlier exposure). Test: the first ``n_test_per_class`` images
    of every digit in the held-out part (fixed, the same for every seed and detector)."""
    img, lab = mnist_raw(Path(data))
    rng = np.random.default_rng(seed)
    pool = np.arange(MNIST_TEST_START)
    normal = rng.choice(pool[lab[pool] == digit], n_train, replace=False)
    test = np.concatenate([np.nonzero(lab == c)[0][np.nonzero(lab == c)[0] >= MNIST_TEST_START][:n_test_per_class]
                           for c in range(10)])
    exposure = rng.choice(pool[lab[pool] != digit], n_exposure, replace=False) if n_exposure else pool[:0]
    tr = gcn_l1(img[normal])
    lo, hi = tr.min(), tr.max()
    to_t = lambda idx: torch.from_numpy(((gcn_l1(img[idx]) - lo) / (hi - lo)).astype(np.float32)[:, None])  # noqa: E731
    X_train = to_t(np.concatenate([normal, exposure]))
    y_train = torch.cat([torch.zeros(len(normal), dtype=torch.int64), torch.ones(len(exposure), dtype=torch.int64)])
    return Split(X_train, to_t(test), (lab[test] != digit).astype(np.int64), y_train if n_exposure else None)
