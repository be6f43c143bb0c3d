"""Feature tables from files: CSV, NPY, NPZ, MAT -> float rows (+ optional 0/1 labels).

* CSV: a header row (a first row of numbers only is taken as data, columns then named
  ``0, 1, ...``). Columns listed in ``ignore_columns`` and the label column are not
  features. Non-numeric columns, and those listed in ``categorical``, are one-hot encoded
  with the categories seen in the training files (stored with the model); at scoring an
  unseen category encodes as all zeros. Empty numeric cells are NaN (the front end maps
  them to the training centre); any other non-numeric text in a numeric column is an error.
* NPY: a 2-D numeric array; ``label_column`` is a column index (e.g. ``-1``).
* NPZ / MAT (MATLAB, e.g. the ODDS files): the array ``data_key`` (default ``X``) and,
  when ``label_column`` names one, the label array (e.g. ``y``).

Labels are required in training files when ``label_column`` is set; files scored with a
trained model may leave them out.

Every problem is a one-line ``InputError`` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamad.errors import described
from streamad.io.files import InputError

EXTS = (".csv", ".npy", ".npz", ".mat")


@dataclass
class Table:
    name: str
    X: np.ndarray  # (rows, features) float64, encoded
    y: np.ndarray | None  # (rows,) int64 0/1 labels, when a label column was given
    features: list[str]  # encoded feature names ("col" or "col=category")


def list_tables(paths: list[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in EXTS)
        elif p.exists():
            if p.suffix.lower() not in EXTS:
                raise InputError(f"{p}: not a table file (expected {', '.join(EXTS)})")
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    return out


def read_raw(path: Path, cfg: Any):
    """(pandas DataFrame of candidate feature columns, labels or None)."""
    import pandas as pd

    ext = path.suffix.lower()
    try:
        if ext == ".csv":
            return _read_csv(path, cfg)
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 2:
                raise InputError(f"{path}: expected a 2-D array, got shape {arr.shape}")
            y = None
            if cfg.label_column is not None and not (cfg.columns and arr.shape[1] == len(cfg.columns)):
                try:
                    j = int(cfg.label_column) % arr.shape[1]
                except ValueError:
                    raise InputError(f"{path}: tabular.label_column must be a column index for NPY files") from None
                y, arr = arr[:, j], np.delete(arr, j, axis=1)
            return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])]), _labels(path, y)
        if ext in (".npz", ".mat"):
            arrays = _arrays(path, ext)
            if cfg.data_key not in arrays:
                raise InputError(f"{path}: no array {cfg.data_key!r} (has: {', '.join(sorted(arrays))}); "
                                 "set tabular.data_key")
            arr = np.asarray(arrays[cfg.data_key])
            if arr.ndim != 2:
                raise InputError(f"{path}: {cfg.data_key!r} must be 2-D, got shape {arr.shape}")
            y = None
            if cfg.label_column is not None and cfg.label_column in arrays:
                y = np.asarray(arrays[cfg.label_column]).ravel()
            elif cfg.label_column is not None and not cfg.columns:
                raise InputError(f"{path}: no label array {cfg.label_column!r}")
            return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])]), _labels(path, y, len(arr))
    except InputError:
        raise
    except Exception as e:  # unreadable / corrupt files: one line
        raise InputError(f"{path}: cannot read ({described(e)})") from None
    raise InputError(f"{path}: not a table file (expected {', '.join(EXTS)})")


def _arrays(path: Path, ext: str) -> dict[str, Any]:
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from scipy.io import loadmat

    return {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}


def _read_csv(path: Path, cfg: Any):
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    if len(df.columns) and all(_is_number(c) for c in df.columns):  # no header: the first row is data
        df = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, skipinitialspace=True)
        df.columns = [str(i) for i in range(df.shape[1])]
    y = None
    if cfg.label_column is not None and cfg.label_column in df.columns:
        y = pd.to_numeric(df.pop(cfg.label_column), errors="coerce").to_numpy()
    elif cfg.label_column is not None and not cfg.columns:  # training needs it; scoring files may lack it
        raise InputError(f"{path}: no label column {cfg.label_column!r}")
    missing = [c for c in cfg.ignore_columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: tabular.ignore_columns: no column {missing[0]!r}")
    return df.drop(columns=list(cfg.ignore_columns)), _labels(path, y)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _labels(path: Path, y: np.ndarray | None, n: int | None = None) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y, dtype=np.float64).ravel()
    if n is not None and len(y) != n:
        raise InputError(f"{path}: {len(y)} labels for {n} rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError(f"{path}: labels must be 0 (normal) or 1 (anomaly)")
    return y.astype(np.int64)


def _numeric(col) -> tuple[np.ndarray, np.ndarray]:
    """Column -> (float values with NaN for empty cells, mask of cells that are not numbers)."""
    import pandas as pd

    s = col.astype(str).str.strip() if col.dtype == object else col
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(v) & ~(s.astype(str).isin(["", "nan", "NaN", "NA"])).to_numpy()
    return v, bad


def learn_schema(frames: list, cfg: Any) -> tuple[list[str], dict[str, list[str]]]:
    """Input columns and the categories of the categorical ones, from the training frames."""
    cols = list(frames[0].columns)
    for f in frames[1:]:
        if list(f.columns) != cols:
            raise InputError(f"training files have different columns: {cols} vs {list(f.columns)}")
    cats: dict[str, list[str]] = {}
    for c in cols:
        if c in cfg.categorical or any(_numeric(f[c])[1].any() for f in frames):
            cats[c] = sorted({str(v).strip() for f in frames for v in f[c]})
    return cols, cats


def encode(df, name: str, columns: list[str], categories: dict[str, list[str]]) -> tuple[np.ndarray, list[str]]:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{name}: column {missing[0]!r} (used in training) is missing")
    parts, names = [], []
    for c in columns:
        if c in categories:
            vals = df[c].astype(str).str.strip().to_numpy()
            parts.append(np.stack([(vals == k) for k in categories[c]], 1).astype(np.float64)
                         if categories[c] else np.zeros((len(df), 0)))
            names += [f"{c}={k}" for k in categories[c]]
        else:
            v, bad = _numeric(df[c])
            if bad.any():
                r = int(np.nonzero(bad)[0][0])
                raise InputError(f"{name}: row {r}: column {c!r} is numeric in training, got {df[c].iloc[r]!r}")
            parts.append(v[:, None])
            names.append(c)
    X = np.concatenate(parts, 1) if parts else np.zeros((len(df), 0))
    return X, names


def load_tables(paths: list[str | Path], cfg: Any) -> list[Table]:
    """Tables from files; learns ``cfg.columns`` / ``cfg.categories`` when they are empty
    (training) and encodes with them otherwise (scoring a trained model)."""
    files = list_tables(paths)
    if not files:
        raise InputError(f"no table files (CSV / NPY / NPZ / MAT) found in {', '.join(map(str, paths))}")
    raws = [(f, *read_raw(f, cfg)) for f in files]
    if not cfg.columns:
        cfg.columns, cfg.categories = learn_schema([df for _, df, _ in raws], cfg)
    out = []
    for f, df, y in raws:
        X, names = encode(df, str(f), cfg.columns, cfg.categories)
        if len(X) == 0:
            raise InputError(f"{f}: no rows")
        out.append(Table(str(f), X, y, names))
    return out
