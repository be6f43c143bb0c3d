"""Tests for streamad.metrics.

Expected values come from independent brute-force implementations written
here (pairwise counts, threshold loops, per-row loops) or from tiny cases
worked out by hand in the comments.
"""

import math

import numpy as np
import pytest

from streamad import metrics as M


# ---------------------------------------------------------------------------
# brute-force references
# ---------------------------------------------------------------------------
def brute_auc(labels, scores):
    """Pairwise Mann-Whitney count: P(score_pos > score_neg) + 0.5 P(tie)."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else (0.5 if p == q else 0.0)
    return total / (len(pos) * len(neg))


def brute_roc(labels, scores):
    """ROC points by looping over every distinct threshold (descending)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, float)
    pts = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        fpr = np.sum(pred & (labels == 0)) / np.sum(labels == 0)
        tpr = np.sum(pred & (labels == 1)) / np.sum(labels == 1)
        pts.append((float(fpr), float(tpr)))
    return pts


def area_up_to(points, x_max):
    """Area under a piecewise-linear curve on [0, x_max], segment by segment."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= x_max:
            break
        if x1 <= x_max:
            area += (x1 - x0) * (y0 + y1) / 2
        else:  # segment crosses x_max: cut it there
            y_cut = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
            area += (x_max - x0) * (y0 + y_cut) / 2
    return area


def brute_counts(labels, preds):
    tp = fp = tn = fn = 0
    for y, p in zip(labels, preds):
        if y and p:
            tp += 1
        elif p:
            fp += 1
        elif y:
            fn += 1
        else:
            tn += 1
    return tp, fp, tn, fn


def ssig(x):
    """NAB scaled sigmoid, written out directly."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def ref_nab_file(scores, windows, thr, w, probation_frac=0.15):
    """Row-by-row NAB scorer following the published rules (sweeper.py)."""
    n = len(scores)
    prob = min(math.floor(probation_frac * n), probation_frac * 5000)
    best = {}  # window index -> best TP score so far (None = missed)
    total_fp = 0.0
    for k, (a, b) in enumerate(windows):
        if b >= prob:
            best[k] = None
    for i in range(n):
        if i < prob or scores[i] < thr:
            continue
        inside = [k for k, (a, b) in enumerate(windows) if a <= i <= b]
        if inside:
            k = inside[0]
            a, b = windows[k]
            width = b - a + 1
            val = ssig(-(b - i + 1) / width) * w["tpWeight"] / ssig(-1.0)
            best[k] = val if best[k] is None else max(best[k], val)
        else:
            before = [(a, b) for (a, b) in windows if b < i]
            if not before:
                total_fp += -w["fpWeight"]
            else:
                a, b = max(before, key=lambda ab: ab[1])
                width = b - a + 1
                pos = (i - b) / (width - 1) if width > 1 else float("inf")
                total_fp += ssig(pos) * w["fpWeight"]
    return total_fp + sum(-w["fnWeight"] if v is None else v for v in best.values())


# ---------------------------------------------------------------------------
# ROC / AUC
# ---------------------------------------------------------------------------
def test_roc_curve_hand_worked_ties():
    # distinct scores 0.9, 0.5, 0.3 (descending); 3 positives, 2 negatives
    # >=0.9: tp=1 fp=1 -> (1/2, 1/3); >=0.5: tp=2 fp=1 -> (1/2, 2/3); >=0.3: (1, 1)
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.9, 0.5, 0.3, 0.3]
    fpr, tpr, thr = M.roc_curve(labels, scores)
    np.testing.assert_allclose(fpr, [0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1.0])
    assert thr[0] == np.inf
    np.testing.assert_allclose(thr[1:], [0.9, 0.5, 0.3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_matches_threshold_loop(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    scores = rng.integers(0, 8, 60).astype(float)  # many ties
    fpr, tpr, _ = M.roc_curve(labels, scores)
    ref = np.array(brute_roc(labels, scores))
    np.testing.assert_allclose(fpr, ref[:, 0])
    np.testing.assert_allclose(tpr, ref[:, 1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_roc_auc_equals_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 80
    labels = (rng.random(n) < 0.3).astype(int)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + labels, 1)  # rounding -> ties
    got = M.roc_auc(labels, scores)
    assert got == pytest.approx(brute_auc(labels, scores), abs=1e-12)
    # same as trapezoid under the ROC curve
    fpr, tpr, _ = M.roc_curve(labels, scores)
    assert got == pytest.approx(area_up_to(list(zip(fpr, tpr)), 1.0), abs=1e-12)


def test_roc_auc_matches_scipy_mannwhitney():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 50)
    scores = rng.integers(0, 5, 50)
    u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    assert M.roc_auc(labels, scores) == pytest.approx(u / (n_pos * n_neg))


def test_roc_auc_single_class_raises():
    with pytest.raises(ValueError, match="one class") as exc:
        M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError):
        M.roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError):
        M.pauc([0, 0], [0.1, 0.2])


def test_roc_auc_extremes():
    labels = [0, 0, 1, 1]
    assert M.roc_auc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert M.roc_auc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert M.roc_auc(labels, [0.5, 0.5, 0.5, 0.5]) == 0.5


# ---------------------------------------------------------------------------
# partial AUC
# ---------------------------------------------------------------------------
def test_pauc_hand_made_curve():
    # 5 negatives, 2 positives: pos=10, neg=9, pos=8, negs 1..4
    # ROC: (0,0) -> (0,.5) -> (.2,.5) -> (.2,1) -> ... -> (1,1)
    labels = [1, 0, 1, 0, 0, 0, 0]
    scores = [10, 9, 8, 4, 3, 2, 1]
    # max_fpr=0.1: area = 0.1*0.5 = 0.05
    a = 0.05
    std = 0.5 * (1 + (a - 0.1**2 / 2) / (0.1 - 0.1**2 / 2))
    assert M.pauc(labels, scores, 0.1) == pytest.approx(std)
    # max_fpr=0.3: area = 0.2*0.5 + 0.1*1 = 0.2
    a = 0.2
    std = 0.5 * (1 + (a - 0.3**2 / 2) / (0.3 - 0.3**2 / 2))
    assert M.pauc(labels, scores, 0.3) == pytest.approx(std)


@pytest.mark.parametrize("seed,max_fpr", [(0, 0.1), (1, 0.05), (2, 0.25), (3, 0.5)])
def test_pauc_matches_direct_trapezoid(seed, max_fpr):
    rng = np.random.default_rng(seed)
    labels = (rng.random(120) < 0.4).astype(int)
    scores = np.round(rng.normal(size=120) + 0.8 * labels, 1)
    pts = brute_roc(labels, scores)
    a = area_up_to(pts, max_fpr)
    lo, hi = max_fpr**2 / 2, max_fpr
    assert M.pauc(labels, scores, max_fpr) == pytest.approx(0.5 * (1 + (a - lo) / (hi - lo)))


def test_pauc_cut_inside_tie_segment():
    # one pos and one neg tie at the top -> first ROC segment is diagonal
    # (0,0)->(0.5,0.5)->(1,1); at max_fpr=0.25 area = 0.25*0.25/2
    labels = [1, 0, 1, 0]
    scores = [5, 5, 1, 1]
    a = 0.25 * 0.25 / 2
    lo, hi = 0.25**2 / 2, 0.25
    assert M.pauc(labels, scores, 0.25) == pytest.approx(0.5 * (1 + (a - lo) / (hi - lo)))
    # random-equivalent curve gives exactly 0.5 standardised
    assert M.pauc(labels, scores, 0.25) == pytest.approx(0.5)


def test_pauc_full_range_and_bad_max_fpr():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 40)
    scores = rng.random(40)
    assert M.pauc(labels, scores, 1.0) == pytest.approx(M.roc_auc(labels, scores))
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            M.pauc(labels, scores, bad)


# ---------------------------------------------------------------------------
# event-level and point-adjusted metrics
# ---------------------------------------------------------------------------
def test_event_prf_hand_worked():
    # windows of 1 s every 2 s: [0,1],[2,3],[4,5],[6,7],[8,9],[10,11]
    starts = np.array([0, 2, 4, 6, 8, 10], float)
    ends = starts + 1
    alerts = [0, 1, 1, 0, 1, 0]
    # windows 1,2 are consecutive alerts -> segment [2,5]; window 4 -> [8,9]
    events = [(4.5, 4.7), (12.0, 13.0)]
    r = M.event_prf(starts, ends, alerts, events)
    assert r["segments"] == [(2.0, 5.0), (8.0, 9.0)]
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert (r["n_events"], r["n_detections"]) == (2, 2)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(0.5)
    # input order must not matter
    perm = [3, 0, 5, 1, 4, 2]
    r2 = M.event_prf(starts[perm], ends[perm], np.array(alerts)[perm], events)
    assert {k: r2[k] for k in ("tp", "fp", "fn")} == {k: r[k] for k in ("tp", "fp", "fn")}


def test_event_prf_one_segment_two_events_and_overlap_merge():
    # overlapping windows [0,3] and [2,5] alerted with a non-alerted one between
    r = M.event_prf([0, 1, 2], [3, 4, 5], [1, 0, 1], [(0.5, 0.6), (4.0, 4.5)])
    assert r["n_detections"] == 1
    assert r["tp"] == 2 and r["fp"] == 0 and r["fn"] == 0
    # precision = 1/1, recall = 2/2
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["f1"] == 1.0


def test_event_prf_min_overlap_and_point_events():
    starts, ends, alerts = [0.0], [5.0], [1]
    # event touching the segment end
    assert M.event_prf(starts, ends, alerts, [(5.0, 6.0)])["tp"] == 1
    assert M.event_prf(starts, ends, alerts, [(5.0, 6.0)], min_overlap=0.5)["tp"] == 0
    # 0.75 s of overlap
    assert M.event_prf(starts, ends, alerts, [(4.25, 6.0)], min_overlap=0.5)["tp"] == 1
    # point event inside the segment stays detectable with min_overlap > 0
    assert M.event_prf(starts, ends, alerts, [(2.0, 2.0)], min_overlap=0.5)["tp"] == 1


def test_event_prf_zero_division_conventions():
    none = M.event_prf([0, 1], [1, 2], [0, 0], [])
    assert (none["precision"], none["recall"], none["f1"]) == (1.0, 1.0, 1.0)
    missed = M.event_prf([0, 1], [1, 2], [0, 0], [(0.2, 0.4)])
    assert (missed["precision"], missed["recall"], missed["f1"]) == (1.0, 0.0, 0.0)
    false_only = M.event_prf([0, 1], [1, 2], [1, 0], [])
    assert (false_only["precision"], false_only["recall"], false_only["f1"]) == (0.0, 1.0, 0.0)
    assert false_only["fp"] == 1


def test_point_adjusted_hand_worked():
    labels = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    preds = [0, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    # segment 1..3 hit -> all 3 points TP; segment 6..7 missed -> 2 FN; FP at 5, 9
    r = M.point_adjusted_prf(labels, preds)
    assert r["precision"] == pytest.approx(3 / 5)
    assert r["recall"] == pytest.approx(3 / 5)
    assert r["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 2))
    # without adjustment: tp=1, fp=2, fn=4
    p = M.pointwise_prf(labels, preds)
    assert p["precision"] == pytest.approx(1 / 3)
    assert p["recall"] == pytest.approx(1 / 5)


def brute_point_adjust(labels, preds):
    labels, preds = list(labels), list(preds)
    adj = list(preds)
    i = 0
    while i < len(labels):
        if labels[i] == 1:
            j = i
            while j < len(labels) and labels[j] == 1:
                j += 1
            if any(preds[i:j]):
                adj[i:j] = [1] * (j - i)
            i = j
        else:
            i += 1
    return brute_counts(labels, adj)


@pytest.mark.parametrize("seed", [0, 1])
def test_point_adjusted_random_vs_brute(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(200) < 0.2).astype(int)
    preds = (rng.random(200) < 0.1).astype(int)
    tp, fp, tn, fn = brute_point_adjust(labels, preds)
    r = M.point_adjusted_prf(labels, preds)
    assert r["precision"] == pytest.approx(tp / (tp + fp))
    assert r["recall"] == pytest.approx(tp / (tp + fn))
    # per-file lists: adjusted per file and counts summed
    l2, p2 = labels[:50], preds[:50]
    a = brute_point_adjust(labels, preds)
    b = brute_point_adjust(l2, p2)
    tp, fp, fn = a[0] + b[0], a[1] + b[1], a[3] + b[3]
    r = M.point_adjusted_prf([labels, l2], [preds, p2])
    assert r["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_pointwise_prf_vs_brute_and_skab_pooling():
    rng = np.random.default_rng(5)
    files = [(rng.integers(0, 2, n), rng.integers(0, 2, n)) for n in (30, 45, 12)]
    tp = fp = tn = fn = 0
    for y, p in files:
        a, b, c, d = brute_counts(y, p)
        tp, fp, tn, fn = tp + a, fp + b, tn + c, fn + d
    r = M.pointwise_prf([f[0] for f in files], [f[1] for f in files])
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (tp, fp, tn, fn)
    assert r["precision"] == pytest.approx(tp / (tp + fp))
    assert r["recall"] == pytest.approx(tp / (tp + fn))
    assert r["f1"] == pytest.approx(tp / (tp + (fn + fp) / 2))  # SKAB formula
    assert r["far"] == pytest.approx(fp / (fp + tn))
    assert r["mar"] == pytest.approx(fn / (fn + tp))


def test_pointwise_prf_edge_cases():
    r = M.pointwise_prf([0, 0, 0], [0, 0, 0])
    assert (r["precision"], r["recall"], r["f1"], r["far"], r["mar"]) == (1.0, 1.0, 1.0, 0.0, 0.0)
    r = M.pointwise_prf([1, 1, 0], [0, 0, 1])
    assert (r["f1"], r["far"], r["mar"]) == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        M.pointwise_prf([0, 2], [0, 1])


# ---------------------------------------------------------------------------
# NAB
# ---------------------------------------------------------------------------
W = M.NAB_PROFILES["standard"]


def test_nab_profiles_weights():
    assert set(M.NAB_PROFILES) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for p in M.NAB_PROFILES.values():
        assert set(p) == {"tpWeight", "fpWeight", "fnWeight", "tnWeight"}
    assert M.NAB_PROFILES["reward_low_FP_rate"]["fpWeight"] == 2 * W["fpWeight"]
    assert M.NAB_PROFILES["reward_low_FN_rate"]["fnWeight"] == 2 * W["fnWeight"]


def test_nab_windows_hand_worked():
    # n=100, one run 50..52 -> centre 51, length int(0.1*100/1)=10 -> [46, 56]
    lab = np.zeros(100, int)
    lab[50:53] = 1
    assert M.nab_windows(np.arange(100), lab) == [(46, 56)]
    # n=200, points at 60 and 150 -> length int(0.1*200/2)=10 -> +-5
    lab = np.zeros(200, int)
    lab[[60, 150]] = 1
    assert M.nab_windows(np.arange(200), lab) == [(55, 65), (145, 155)]
    # the same anomalies given as timestamps (one row per minute)
    ts = np.arange(200) * 60.0
    assert M.nab_windows(ts, [60 * 60.0, 150 * 60.0]) == [(55, 65), (145, 155)]
    # clipped at the end of the series: length 20 -> [188, 199]
    lab = np.zeros(200, int)
    lab[198] = 1
    assert M.nab_windows(np.arange(200), lab) == [(188, 199)]
    assert M.nab_windows(np.arange(10), np.zeros(10)) == []


def _corpus():
    """Two files, three anomalies, all windows after the probationary period."""
    l1 = np.zeros(1000, int)
    l1[[400, 800]] = 1  # windows of 50 rows: [375, 425], [775, 825]
    l2 = np.zeros(600, int)
    l2[[300]] = 1  # window of 60 rows: [270, 330]
    return [l1, l2]


def _perfect_scores(labels):
    s = np.zeros(labels.size)
    for a, _ in M.nab_windows(np.arange(labels.size), labels):
        s[a] = 1.0
    return s


def test_nab_perfect_and_null_detectors():
    labels = _corpus()
    perfect = M.nab_score([(_perfect_scores(y), y) for y in labels])
    assert perfect["score"] == pytest.approx(100.0)
    assert perfect["perfect"] == pytest.approx(3 * W["tpWeight"])
    assert perfect["null"] == pytest.approx(-3 * W["fnWeight"])
    null = M.nab_score([(np.zeros(y.size), y) for y in labels])
    assert null["score"] == pytest.approx(0.0)
    assert null["raw"] == pytest.approx(null["null"])
    low_fn = M.nab_score([(np.zeros(y.size), y) for y in labels], "reward_low_FN_rate")
    assert low_fn["null"] == pytest.approx(-3 * 2.0)


def test_nab_probation_detection_ignored():
    y = _corpus()[0]
    s = _perfect_scores(y)
    wins = M.nab_windows(np.arange(y.size), y)
    base, _ = M.nab_file_score(s, wins, 0.5, "standard")
    s2 = s.copy()
    s2[50] = 1.0  # row 50 < probation length floor(0.15*1000)=150
    with_prob, counts = M.nab_file_score(s2, wins, 0.5, "standard")
    assert with_prob == pytest.approx(base)
    assert counts["fp_rows"] == 0 and counts["probation"] == 150
    # ... whereas the same detection after probation and before any window
    # is a false positive worth exactly -fpWeight
    s3 = s.copy()
    s3[200] = 1.0
    after, counts = M.nab_file_score(s3, wins, 0.5, "standard")
    assert after == pytest.approx(base - W["fpWeight"])
    assert counts["fp_rows"] == 1
    assert M.nab_score([(s2, y)])["score"] == pytest.approx(100.0)


def test_nab_false_positive_lowers_score():
    y = _corpus()[0]
    s = _perfect_scores(y)
    s[600] = 1.0  # 175 rows after window [375, 425] (width 51)
    res = M.nab_score([(s, y)])
    assert res["score"] < 100.0
    expected_fp = W["fpWeight"] * ssig((600 - 425) / (51 - 1))
    assert res["raw"] == pytest.approx(2 * W["tpWeight"] + expected_fp)
    # an FP right after a window costs less than one far away
    near = _perfect_scores(y)
    near[430] = 1.0
    wins = M.nab_windows(np.arange(y.size), y)
    r_near, _ = M.nab_file_score(near, wins, 0.5, "standard")
    r_far, _ = M.nab_file_score(s, wins, 0.5, "standard")
    assert r_far < r_near < 2 * W["tpWeight"]
    # the low-FP profile doubles the FP penalty
    r_lowfp, _ = M.nab_file_score(s, wins, 0.5, "reward_low_FP_rate")
    assert r_lowfp - 2 == pytest.approx(2 * (r_far - 2))


def test_nab_earlier_detection_scores_higher():
    y = np.zeros(1000, int)
    y[500] = 1
    wins = M.nab_windows(np.arange(1000), y)  # [450, 550], width 101
    a, b = wins[0]
    raws = []
    for i in (a, a + 30, 500, b):
        s = np.zeros(1000)
        s[i] = 1.0
        raws.append(M.nab_file_score(s, wins, 0.5, "standard")[0])
    assert all(x > z for x, z in zip(raws[:-1], raws[1:]))
    assert raws[0] == pytest.approx(W["tpWeight"])  # first row of window
    assert raws[-1] == pytest.approx(ssig(-1 / 101) / ssig(-1.0))  # last row
    # only the first detection in a window counts
    s = np.zeros(1000)
    s[[a, a + 30, b]] = 1.0
    assert M.nab_file_score(s, wins, 0.5, "standard")[0] == pytest.approx(raws[0])
    # missed window costs fnWeight
    assert M.nab_file_score(np.zeros(1000), wins, 0.5, "standard")[0] == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_nab_file_score_matches_row_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = np.zeros(n, int)
    y[rng.choice(np.arange(60, n), 3, replace=False)] = 1
    wins = M.nab_windows(np.arange(n), y)
    s = np.round(rng.random(n), 2)
    for profile in ("standard", "reward_low_FN_rate"):
        w = M.NAB_PROFILES[profile]
        for thr in (0.5, 0.9, 0.97):
            got, _ = M.nab_file_score(s, wins, thr, profile)
            assert got == pytest.approx(ref_nab_file(s, wins, thr, w))


def test_nab_score_threshold_is_optimal():
    rng = np.random.default_rng(3)
    files = []
    for n, k in ((250, 2), (200, 1)):
        y = np.zeros(n, int)
        y[rng.choice(np.arange(60, n - 10), k, replace=False)] = 1
        s = np.round(rng.random(n) ** 3, 2)  # mostly low scores, ties
        for a, _ in M.nab_windows(np.arange(n), y):
            s[a + 2] = max(s[a + 2], 0.9)
        files.append((s, y))
    res = M.nab_score(files, "standard")

    def corpus_raw(thr):
        total = 0.0
        for s, y in files:
            n = len(s)
            wins = M.nab_windows(np.arange(n), y, probation_frac=0.15)
            total += ref_nab_file(s, wins, thr, W)
        return total

    candidates = sorted(set(np.concatenate([f[0] for f in files]).tolist())) + [1.1]
    best = max(corpus_raw(t) for t in candidates)
    assert res["raw"] == pytest.approx(best)
    assert res["raw"] == pytest.approx(corpus_raw(res["threshold"]))
    assert res["score"] == pytest.approx(
        100 * (res["raw"] - res["null"]) / (res["perfect"] - res["null"])
    )


# ---------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------
def test_plot_roc_writes_png(tmp_path):
    labels = [0, 1, 0, 1, 1, 0]
    scores = [0.1, 0.8, 0.4, 0.35, 0.9, 0.2]
    fpr, tpr, _ = M.roc_curve(labels, scores)
    out = tmp_path / "sub" / "roc.png"
    ret = M.plot_roc({"det": (fpr, tpr, M.roc_auc(labels, scores))}, out, "test ROC")
    assert ret == str(out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
