"""Reading multichannel time series from files: CSV (any of , ; TAB) and WFDB records.

``load_series_files(paths, ...)`` returns one ``SeriesData`` per file. Directories are
expanded recursively into their ``*.csv`` and ``*.hea`` files (sorted).

CSV rules
  * separator sniffed among ',', ';' and TAB (the one splitting the first lines into the
    same, largest number of fields); a UTF-8 BOM is ignored; blank lines are skipped;
  * header auto-detected: when every field of the first row is a number the file has no
    header and its columns are named ``value`` (one column) or ``c0, c1, ...``;
  * time column: ``time_column`` if given, else the first column named ``datetime``,
    ``timestamp``, ``time``, ``date`` or ``ts`` (case-insensitive), else none. Cells are
    epoch seconds (a number) or ISO-8601 / ``YYYY-MM-DD HH:MM:SS`` (naive = UTC). Without a
    time column, time = row index / 1 Hz. ``time_labels`` keep the cells exactly as written;
  * labels: ``label_column`` if given, else a column named ``anomaly`` / ``label`` /
    ``is_anomaly`` if present, else None. Nonzero = 1; empty cells = 0;
  * value columns: ``channels`` (the model's channel names, in that order) if given, else
    ``value_columns`` if given, else every numeric column except the time column, the label
    column and columns named ``anomaly``, ``changepoint``, ``label``, ``is_anomaly``;
  * empty cells and ``nan``/``NA``/``null``/``inf`` values are kept as NaN (see
    ``fill_missing``); rows are kept in file order.

WFDB (``.hea``): every signal (or the selected ones) in physical units, channel names from
the header, times = sample / fs, ``labels`` None, and when ``<record>.atr`` exists the
annotated beats: ``beats`` (sample indices) and ``beat_labels`` (1 = abnormal). Normal beats
follow the AAMI convention (N, L, R, e, j); other beat symbols (A, a, J, S, V, E, F, /, f,
Q, ...) are abnormal; non-beat annotations (+, ~, |, x, [, ], ...) are left out.

Every problem raises ``InputError`` with one line naming the file (and column / row).
"""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamad.errors import first_line
from streamad.io.files import InputError, expand_paths
from streamad.timelabels import parse_time, seconds_label

SERIES_EXTS = {".csv", ".hea"}
TIME_NAMES = ("datetime", "timestamp", "time", "date", "ts")
LABEL_NAMES = ("anomaly", "label", "is_anomaly")
NOT_VALUES = {"anomaly", "changepoint", "label", "is_anomaly"}
NA_TOKENS = {"", "na", "n/a", "nan", "null", "none"}
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
NORMAL_BEATS = set("NLRej")


@dataclass
class SeriesData:
    name: str
    values: np.ndarray  # float32 (T, C), NaN where missing
    times: np.ndarray  # float64 epoch seconds (T,)
    time_labels: list[str]  # timestamps exactly as in the input (CSV), or seconds as strings
    channels: list[str]
    labels: np.ndarray | None  # int8 (T,) 0/1 per row, or None
    rate_hz: float  # median readings per second
    beats: np.ndarray | None = None  # WFDB only: sample indices of annotated beats
    beat_labels: np.ndarray | None = None  # WFDB only: 1 = abnormal beat, 0 = normal


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def fill_missing(values: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN / Inf per channel; edge gaps take the nearest valid value.

    Works on (T,) or (T, C); returns a new array of the same dtype. A channel with no
    finite value at all stays NaN (the caller decides what to do with it).
    """
    x = np.array(values, copy=True)
    if x.ndim == 1:
        return fill_missing(x[:, None])[:, 0]
    idx = np.arange(len(x))
    for c in range(x.shape[1]):
        col = x[:, c]
        ok = np.isfinite(col)
        if ok.all():
            continue
        if not ok.any():
            col[:] = np.nan
            continue
        col[~ok] = np.interp(idx[~ok], idx[ok], col[ok].astype(np.float64))
    return x


def _estimate_rate(times: np.ndarray, default: float = 1.0) -> float:
    if len(times) < 2:
        return default
    d = np.diff(times)
    d = d[d > 0]
    if not len(d):
        return default
    return float(1.0 / np.median(d))


# ---------------------------------------------------------------------------
# file listing
# ---------------------------------------------------------------------------
def list_series(paths: list[str | Path] | str | Path) -> list[Path]:
    """Expand directories (recursively) into sorted CSV / WFDB header files; keep files."""
    return expand_paths(paths, SERIES_EXTS)


def load_series_files(paths: list[str | Path] | str | Path, time_column: str | None = None,
                      value_columns: list[str] | None = None, label_column: str | None = None,
                      channels: list[str] | None = None) -> list[SeriesData]:
    """Load every CSV / WFDB file in ``paths`` (files or directories)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = list_series(paths)
    if not files:
        raise InputError(f"no .csv or .hea files in {', '.join(map(str, paths))}")
    out = []
    for f in files:
        if f.suffix.lower() == ".hea":
            out.append(_load_wfdb(f, value_columns, channels))
        else:
            out.append(_load_csv(f, time_column, value_columns, label_column, channels))
    return out


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------
def _sniff(lines: list[str]) -> str:
    best, best_n = ",", 0
    for sep in (",", ";", "\t"):
        counts = {ln.count(sep) for ln in lines}
        if len(counts) == 1:
            n = counts.pop()
            if n > best_n:
                best, best_n = sep, n
    if best_n == 0:  # no consistent candidate: take the most frequent in the first line
        first = lines[0]
        n, sep = max((first.count(s), s) for s in (",", ";", "\t"))
        if n:
            best = sep
    return best


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _to_float_column(cells: list[str]) -> tuple[np.ndarray, int]:
    """(float64 array, index of the first cell that is not a number or -1)."""
    try:
        return np.asarray(cells).astype(np.float64), -1
    except ValueError:
        pass
    out = np.empty(len(cells), dtype=np.float64)
    for i, c in enumerate(cells):
        try:
            out[i] = float(c)
        except ValueError:
            if c.strip().lower() in NA_TOKENS:
                out[i] = np.nan
            else:
                return out, i
    return out, -1


def _find(name: str, header: list[str], path: Path, what: str = "column") -> int:
    if name in header:
        return header.index(name)
    low = [h.strip().lower() for h in header]
    key = name.strip().lower()
    if low.count(key) == 1:
        return low.index(key)
    raise InputError(f"{path}: no {what} {name!r} (columns: {', '.join(header)})")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int], str]:
    """(header, data rows, file line of each row, separator); every row has the header's width."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    sample = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if not sample:
        raise InputError(f"{path}: empty file")
    sep = _sniff(sample[:20])
    rows_iter = csv.reader(io.StringIO(text), delimiter=sep)
    rows, lines = [], []
    for row in rows_iter:
        if row and any(c.strip() for c in row):
            rows.append([c.strip() for c in row])
            lines.append(rows_iter.line_num)
    first = rows[0]
    if all(_is_number(c) for c in first):  # no header
        header = ["value"] if len(first) == 1 else [f"c{i}" for i in range(len(first))]
    else:
        header = [h if h else f"c{i}" for i, h in enumerate(first)]
        rows, lines = rows[1:], lines[1:]
        dup = {h for h in header if header.count(h) > 1}
        if dup:
            raise InputError(f"{path}: duplicate column name {sorted(dup)[0]!r}")
    if not rows:
        raise InputError(f"{path}: no data rows (only a header)")
    for r, (row, ln) in enumerate(zip(rows, lines)):
        if len(row) != len(header):
            raise InputError(f"{path}: row {r + 1} (line {ln}) has {len(row)} fields, "
                             f"expected {len(header)} (separator {sep!r})")
    return header, rows, lines, sep


def _pick(name: str | None, defaults: tuple[str, ...], header: list[str], path: Path) -> int | None:
    """Index of the named column, else of the first default name present, else None."""
    if name is not None:
        return _find(name, header, path)
    low = [h.lower() for h in header]
    return next((low.index(n) for n in defaults if n in low), None)


def _times(cells: list[str], column: str, lines: list[int], path: Path) -> np.ndarray:
    times = np.empty(len(cells), dtype=np.float64)
    for r, c in enumerate(cells):
        try:
            times[r] = parse_time(c)
        except (ValueError, OverflowError):
            what = "empty timestamp" if not c else f"unparseable timestamp {c[:40]!r}"
            raise InputError(f"{path}: {what} in column {column!r} at row {r + 1} "
                             f"(line {lines[r]}); expected epoch seconds or ISO-8601") from None
    return times


def _numeric(cells: list[str], column: str, lines: list[int], path: Path, what: str = "column") -> np.ndarray:
    arr, bad = _to_float_column(cells)
    if bad >= 0:
        raise InputError(f"{path}: {what} {column!r} row {bad + 1} (line {lines[bad]}): "
                         f"not a number: {cells[bad][:40]!r}")
    return arr


def _value_columns(cols: list, header: list[str], explicit: list[str] | None, skip: set, lines: list[int],
                   path: Path) -> tuple[list[np.ndarray], list[str]]:
    if explicit:
        return [_numeric(list(cols[_find(c, header, path)]), c, lines, path) for c in explicit], list(explicit)
    arrays, names = [], []
    for i, h in enumerate(header):
        if i in skip or h.lower() in NOT_VALUES:
            continue
        arr, bad = _to_float_column(list(cols[i]))
        if bad < 0 and np.isfinite(arr).any():
            arrays.append(arr)
            names.append(h)
    if not arrays:
        raise InputError(f"{path}: no numeric value columns (columns: {', '.join(header)})")
    return arrays, names


def _load_csv(path: Path, time_column: str | None, value_columns: list[str] | None,
              label_column: str | None, channels: list[str] | None) -> SeriesData:
    header, data, lines, _sep = _read_rows(path)
    cols = list(zip(*data))
    t_idx = _pick(time_column, TIME_NAMES, header, path)
    if t_idx is not None:
        time_labels = list(cols[t_idx])
        times = _times(time_labels, header[t_idx], lines, path)
    else:
        times = np.arange(len(data), dtype=np.float64)
        time_labels = [str(i) for i in range(len(data))]
    l_idx = _pick(label_column, LABEL_NAMES, header, path)
    labels = None
    if l_idx is not None:
        lab = _numeric(list(cols[l_idx]), header[l_idx], lines, path, what="label column")
        labels = (np.nan_to_num(lab, nan=0.0) != 0).astype(np.int8)
    arrays, names = _value_columns(cols, header, channels or value_columns, {t_idx, l_idx}, lines, path)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.stack(arrays, axis=1).astype(np.float32)
    values[~np.isfinite(values)] = np.nan
    empty = [n for n, ok in zip(names, np.isfinite(values).any(axis=0)) if not ok]
    if empty:  # nothing to interpolate from: it would score as a sensor sitting at its training centre
        raise InputError(f"{path}: column {empty[0]!r} holds no numbers (leave it out with --value-columns)")
    return SeriesData(name=str(path), values=values, times=times, time_labels=time_labels,
                      channels=names, labels=labels, rate_hz=_estimate_rate(times))


# ---------------------------------------------------------------------------
# WFDB
# ---------------------------------------------------------------------------
def _load_wfdb(path: Path, value_columns: list[str] | None, channels: list[str] | None) -> SeriesData:
    with warnings.catch_warnings():  # wfdb trips pandas deprecation warnings
        warnings.simplefilter("ignore")
        import wfdb  # lazy: only needed for WFDB records

        return _read_wfdb(wfdb, path, value_columns, channels)


def _read_wfdb(wfdb, path: Path, value_columns: list[str] | None, channels: list[str] | None) -> SeriesData:
    rec_name = str(path.with_suffix(""))
    try:
        rec = wfdb.rdrecord(rec_name)
    except Exception as e:  # wfdb raises many types for broken / missing files
        raise InputError(f"{path}: cannot read WFDB record ({first_line(e)})") from None
    sig = rec.p_signal if rec.p_signal is not None else rec.d_signal
    if sig is None or sig.ndim != 2 or not sig.shape[0]:
        raise InputError(f"{path}: WFDB record has no samples")
    names = [str(n) for n in (rec.sig_name or [f"c{i}" for i in range(sig.shape[1])])]
    explicit = channels if channels else value_columns
    if explicit:
        idx = [_find(c, names, path, what="signal") for c in explicit]
        sig = sig[:, idx]
        names = list(explicit)
    fs = float(rec.fs)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(sig, dtype=np.float32)
    values[~np.isfinite(values)] = np.nan
    n = values.shape[0]
    times = np.arange(n, dtype=np.float64) / fs
    time_labels = [seconds_label(t) for t in times.tolist()]
    beats = beat_labels = None
    if path.with_suffix(".atr").is_file():
        try:
            ann = wfdb.rdann(rec_name, "atr")
        except Exception as e:
            raise InputError(f"{path.with_suffix('.atr')}: cannot read annotations ({str(e)[:160]})") from None
        sym = np.asarray(ann.symbol, dtype=object)
        samp = np.asarray(ann.sample, dtype=np.int64)
        is_beat = np.array([s in BEAT_SYMBOLS for s in sym], dtype=bool)
        beats = samp[is_beat]
        beat_labels = np.array([s not in NORMAL_BEATS for s in sym[is_beat]], dtype=np.int8)
    return SeriesData(name=str(path), values=values, times=times, time_labels=time_labels,
                      channels=names, labels=None, rate_hz=fs, beats=beats, beat_labels=beat_labels)
