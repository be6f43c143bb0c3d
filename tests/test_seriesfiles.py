"""Tests for streamad.io.seriesfiles on the real SKAB / MIT-BIH files and small hand-made CSVs.

Expected values come from reading the files independently here (csv module, WFDB header
arithmetic) or from the data README, never from the loader's own output.
"""
from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from streamad.io.files import InputError
from streamad.io.seriesfiles import fill_missing, load_series_files

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMAD_DATA", ROOT.parent / "shared" / "data"))
SKAB = DATA / "series" / "skab" / "data"
MITBIH = DATA / "ecg" / "mitbih"


def _utc(*a) -> float:
    return datetime(*a, tzinfo=timezone.utc).timestamp()


# ---------------------------------------------------------------------------
# real files
# ---------------------------------------------------------------------------
def test_skab_valve_file():
    path = SKAB / "valve1" / "0.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, body = rows[0], rows[1:]
    expected_channels = [h for h in header if h not in ("datetime", "anomaly", "changepoint")]
    anomaly = [float(r[header.index("anomaly")]) for r in body]

    (d,) = load_series_files([path])
    assert d.channels == expected_channels and len(expected_channels) == 8
    assert d.values.shape == (len(body), 8) and d.values.dtype == np.float32
    pressure = np.array([float(r[header.index("Pressure")]) for r in body], dtype=np.float32)
    np.testing.assert_array_equal(d.values[:, d.channels.index("Pressure")], pressure)
    assert d.labels is not None and d.labels.dtype == np.int8
    assert int(d.labels.sum()) == sum(1 for a in anomaly if a != 0) > 0
    assert set(np.unique(d.labels)) == {0, 1}
    # timestamps kept verbatim, parsed as UTC, one per second
    assert d.time_labels[0] == body[0][0] == "2020-03-09 10:14:33"
    assert d.times[0] == _utc(2020, 3, 9, 10, 14, 33)
    assert d.rate_hz == 1.0 and d.times.dtype == np.float64
    assert d.beats is None and d.beat_labels is None


def test_skab_directory_and_channel_selection():
    files = load_series_files([SKAB])
    assert len(files) == 35  # the data README: 35 CSV files
    free = next(f for f in files if f.name.endswith("anomaly-free.csv"))
    assert free.labels is None and len(free.channels) == 8  # no anomaly column there
    (d,) = load_series_files([SKAB / "valve1" / "0.csv"], channels=["Pressure", "Current"])
    (full,) = load_series_files([SKAB / "valve1" / "0.csv"])
    assert d.channels == ["Pressure", "Current"]
    np.testing.assert_array_equal(d.values[:, 0], full.values[:, full.channels.index("Pressure")])
    np.testing.assert_array_equal(d.values[:, 1], full.values[:, full.channels.index("Current")])
    with pytest.raises(InputError, match=r"0\.csv: no column 'Flow'"):
        load_series_files([SKAB / "valve1" / "0.csv"], channels=["Pressure", "Flow"])


def test_mitbih_record_100():
    (d,) = load_series_files([MITBIH / "100.hea"])
    # header: "100 2 360 650000"; signals MLII and V5, gain 200/mV, baseline 1024,
    # first samples 995 and 1011 -> (995-1024)/200 and (1011-1024)/200 mV
    assert d.channels == ["MLII", "V5"] and d.rate_hz == 360.0
    assert d.values.shape == (650000, 2) and d.values.dtype == np.float32
    np.testing.assert_allclose(d.values[0], [-0.145, -0.065], atol=1e-6)
    assert d.times[0] == 0.0 and d.times[360] == pytest.approx(1.0)
    assert d.time_labels[360] == "1"
    assert d.labels is None
    # data README: 100.atr has 2239 N, 33 A, 1 V (+ non-beat annotations, excluded)
    assert d.beats is not None and d.beat_labels is not None
    assert len(d.beats) == len(d.beat_labels) == 2239 + 33 + 1
    assert int((d.beat_labels == 0).sum()) == 2239 and int((d.beat_labels == 1).sum()) == 34
    assert np.all(np.diff(d.beats) > 0) and d.beats[-1] < 650000


def test_wfdb_channel_selection_without_annotations():
    # v102s.hea: "v102s 4 250 75000", signals II, V, PLETH, RESP; no .atr file
    (d,) = load_series_files([MITBIH / "v102s.hea"])
    assert d.channels == ["II", "V", "PLETH", "RESP"] and d.values.shape == (75000, 4)
    assert d.rate_hz == 250.0 and d.beats is None and d.beat_labels is None
    (sel,) = load_series_files([MITBIH / "v102s.hea"], channels=["RESP", "II"])
    assert sel.channels == ["RESP", "II"]
    np.testing.assert_array_equal(sel.values, d.values[:, [3, 0]])
    with pytest.raises(InputError, match=r"v102s\.hea: no signal 'ABP' \(columns: II, V, PLETH, RESP\)"):
        load_series_files([MITBIH / "v102s.hea"], channels=["ABP"])


def test_headerless_single_column_heartpy():
    path = DATA / "ecg" / "heartpy" / "data.csv"
    n = sum(1 for ln in open(path) if ln.strip())
    (d,) = load_series_files([path])
    assert d.channels == ["value"] and d.values.shape == (n, 1)
    assert d.values[0, 0] == float(open(path).readline())
    np.testing.assert_array_equal(d.times, np.arange(n))
    assert d.labels is None and d.rate_hz == 1.0


# ---------------------------------------------------------------------------
# small CSVs: formats
# ---------------------------------------------------------------------------
def test_separators_header_and_time_formats(tmp_path):
    p = tmp_path / "tab.csv"
    p.write_text("timestamp\tv\tw\n2020-01-01T00:00:00Z\t1\t2\n2020-01-01T01:00:00+01:00\t3\t4\n"
                 "2020-01-01 00:00:10\t5\t6\n")
    (d,) = load_series_files([p])
    assert d.channels == ["v", "w"]
    t0 = _utc(2020, 1, 1)
    np.testing.assert_array_equal(d.times, [t0, t0, t0 + 10])  # +01:00 and naive(=UTC) handled
    assert d.time_labels == ["2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", "2020-01-01 00:00:10"]

    p = tmp_path / "semi.csv"
    p.write_text("t;x;y\n100;1.5;2\n100.5;2.5;3\n101;3.5;4\n")
    (d,) = load_series_files([p], time_column="t", value_columns=["y"])
    assert d.channels == ["y"] and d.values[:, 0].tolist() == [2, 3, 4]
    assert d.times.tolist() == [100, 100.5, 101] and d.rate_hz == 2.0

    p = tmp_path / "nohead.csv"
    p.write_text("1,2,3\n4,5,6\n")
    (d,) = load_series_files([p])
    assert d.channels == ["c0", "c1", "c2"] and d.values.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert d.times.tolist() == [0, 1] and d.labels is None


def test_labels_missing_values_and_default_columns(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("time,a,name,y,changepoint\n0,1,x,0,0\n1,,x,2,1\n2,nan,x,0,0\n3,4,x,-1,0\n")
    (d,) = load_series_files([p], label_column="y")
    assert d.channels == ["a"]  # 'name' is text, 'y' labels, 'changepoint' excluded
    assert d.labels.tolist() == [0, 1, 0, 1]
    assert np.isnan(d.values[1, 0]) and np.isnan(d.values[2, 0]) and d.values[3, 0] == 4
    np.testing.assert_array_equal(fill_missing(d.values)[:, 0], [1, 2, 3, 4])


def test_fill_missing():
    x = np.array([[np.nan, 1, np.nan], [1, np.nan, np.nan], [np.nan, 3, np.nan],
                  [3, np.inf, np.nan], [np.nan, 5, np.nan]], dtype=np.float32)
    y = fill_missing(x)
    assert y.dtype == np.float32 and np.isnan(x[0, 0])  # input untouched
    np.testing.assert_array_equal(y[:, 0], [1, 1, 2, 3, 3])  # edges take the nearest value
    np.testing.assert_array_equal(y[:, 1], [1, 2, 3, 4, 5])  # Inf treated as missing
    assert np.isnan(y[:, 2]).all()  # nothing to interpolate from
    np.testing.assert_array_equal(fill_missing(np.array([np.nan, 2.0, np.nan, 4.0])), [2, 2, 3, 4])


# ---------------------------------------------------------------------------
# errors: one line, naming file and column / row
# ---------------------------------------------------------------------------
def _err(tmp_path, text, **kw) -> str:
    p = tmp_path / "data.csv"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_series_files([p], **kw)
    msg = str(e.value)
    assert "\n" not in msg and "data.csv" in msg
    return msg


def test_error_messages(tmp_path):
    msg = _err(tmp_path, "time,a,b,c\n0,1,2,3\n", value_columns=["foo"])
    assert "no column 'foo'" in msg and "columns: time, a, b, c" in msg
    msg = _err(tmp_path, "datetime,a\n2020-01-01 00:00:00,1\n2020-01-01 00:00:01,2\nsoon,3\n")
    assert "unparseable timestamp 'soon'" in msg and "row 3" in msg and "'datetime'" in msg
    assert "no column 'when'" in _err(tmp_path, "t,a\n0,1\n", time_column="when")
    assert "no column 'lab'" in _err(tmp_path, "t,a\n0,1\n", label_column="lab")
    assert "empty file" in _err(tmp_path, "")
    assert "no data rows" in _err(tmp_path, "a,b\n")
    assert "no numeric value columns" in _err(tmp_path, "name,kind\nx,y\n")
    msg = _err(tmp_path, "a,b\n1,2\n3,oops\n", value_columns=["b"])
    assert "column 'b'" in msg and "row 2" in msg and "'oops'" in msg
    assert "has 1 fields, expected 2" in _err(tmp_path, "a,b\n1,2\n3\n")
    with pytest.raises(InputError, match="no such file"):
        load_series_files([tmp_path / "missing.csv"])
