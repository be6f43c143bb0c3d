"""Full-covariance frame mixture: densities against scipy, correlated bands, state round trip."""
import numpy as np
import torch
from scipy.stats import multivariate_normal

from streamad.models.fullgmm import FullGMM
from streamad.models.gmm import DiagGMM


def _correlated(n=3000, d=8, seed=0):
    """Bands that move together (a loudness direction) plus small independent noise."""
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 2.0, (n, 1))
    return level * np.ones((1, d)) + rng.normal(0, 0.3, (n, d))


def test_single_component_nll_matches_scipy():
    x = _correlated()
    g = FullGMM(k=1, shrink=0.0, reg=0.0).fit(torch.tensor(x))
    mu, cov = x.mean(0), np.cov(x.T, bias=True)
    ref = -multivariate_normal(mu, cov).logpdf(x[:20])
    np.testing.assert_allclose(g.nll(torch.tensor(x[:20])).numpy(), ref, rtol=1e-3)  # float32 EM


def test_full_covariance_separates_shape_from_loudness_far_better_than_diagonal():
    x = torch.tensor(_correlated())
    louder = torch.full((1, 8), 3.0)  # all bands up together: normal here
    shape = torch.tensor([[3.0, -3.0, 3.0, -3.0, 0, 0, 0, 0]]) * (3.0 * 8 ** 0.5 / 6.0)  # same norm, new shape
    full = FullGMM(k=2, shrink=0.1, reg=1e-2).fit(x)
    diag = DiagGMM(k=2).fit(x)
    gap_full = float(full.nll(shape) - full.nll(louder))
    gap_diag = float(diag.nll(shape) - diag.nll(louder))
    assert gap_full > 50 and gap_full > 3 * gap_diag  # measured: 114 vs 25


def test_state_round_trip_and_float32_scoring():
    x = torch.tensor(_correlated(500))
    g = FullGMM(k=3).fit(x)
    h = FullGMM(k=3)
    h.load_state(g.state())
    assert all(v.dtype == torch.float32 for v in g.state().values())
    torch.testing.assert_close(g.nll(x[:50]), h.nll(x[:50]), rtol=0, atol=0)


def test_frame_fullgmm_patches_of_any_height_and_diag_combination_round_trip():
    """64 mel bands x 32 frames; with diag_k the diagonal mixture's NLL is a third component."""
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 1, 64, 32, generator=g)
    det = create("frame_fullgmm", {"k": 2, "iters": 5, "diag_k": 2, "diag_iters": 5}).fit(X, seed=0)
    T = torch.randn(6, 1, 64, 32, generator=g) * 2
    c = det.score_components(T)
    assert set(c) == {"nll", "nll_top", "nll_diag"} and all(v.shape == (6,) for v in c.values())
    assert (c["nll_top"] >= c["nll"]).all()
    det2 = create("frame_fullgmm", {"k": 2, "iters": 5, "diag_k": 2, "diag_iters": 5})
    det2.load_state(det.state())
    for k, v in det2.score_components(T).items():
        np.testing.assert_allclose(v, c[k], rtol=1e-6)


def test_floor_makes_quieter_than_normal_frames_normal_but_keeps_louder_ones_anomalous():
    """A fade-out / drop-out (every band far below the training range) is an outlier without the
    floor and ordinary with it; an event that adds energy scores the same either way."""
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(1)
    level = torch.randn(60, 1, 1, 32, generator=g)  # loudness moves every band together, as in audio
    X = level + 0.3 * torch.randn(60, 1, 16, 32, generator=g)
    quiet, loud = torch.full((1, 1, 16, 32), -6.0), X[:1].clone()
    loud[..., 10:14] += 6.0  # a few frames with energy added in every band
    plain = create("frame_fullgmm", {"k": 2}).fit(X, seed=0)
    floored = create("frame_fullgmm", {"k": 2, "floor": 0.01}).fit(X, seed=0)
    normal = floored.score_components(X[:20])["nll"].max()
    assert plain.score_components(quiet)["nll"][0] > 3 * normal  # measured 29.6 vs 7.9
    assert floored.score_components(quiet)["nll"][0] < normal  # measured 5.9 vs 7.6
    assert floored.score_components(loud)["nll_top"][0] > 3 * floored.score_components(X[:20])["nll_top"].max()
    again = create("frame_fullgmm", {"k": 2, "floor": 0.01})
    again.load_state(floored.state())
    np.testing.assert_allclose(again.score_components(quiet)["nll"], floored.score_components(quiet)["nll"])


def test_local_contrast_ignores_a_slow_level_change_but_not_a_short_event():
    """local_k: a window whose whole background is louder (a car passing) has the same local
    contrast as a normal one; a short burst inside an otherwise normal window stands out."""
    from streamad.models.frames import local_contrast
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(2)
    X = 0.5 * torch.randn(80, 1, 16, 32, generator=g)
    louder = X[:1] + 4.0  # every band and frame up by the same amount: nothing local changed
    burst = X[:1].clone()
    burst[..., 3:9, 12:16] += 4.0  # a few bands for 4 frames
    f = lambda x: x.reshape(len(x), 16, 32).transpose(1, 2)  # noqa: E731 (patches -> frames)
    torch.testing.assert_close(local_contrast(f(louder)), local_contrast(f(X[:1])))
    det = create("frame_fullgmm", {"k": 2, "local_k": 2}).fit(X, seed=0)
    c = det.score_components(torch.cat([X[:20], louder, burst]))
    assert {"nll_local", "nll_local_top"} <= set(c)
    normal_top = c["nll_local_top"][:20].max()
    assert abs(c["nll_local_top"][20] - c["nll_local_top"][0]) < 1e-3  # level change: same local score
    assert c["nll"][20] > 3 * c["nll"][:20].max()  # ... while the absolute mixture flags it
    assert c["nll_local_top"][21] > 2 * normal_top
    again = create("frame_fullgmm", {"k": 2, "local_k": 2})
    again.load_state(det.state())
    np.testing.assert_allclose(again.score_components(burst)["nll_local_top"], c["nll_local_top"][21:], rtol=1e-6)


def test_local_contrast_quantile_reference():
    from streamad.models.frames import local_contrast

    f = torch.randn(5, 32, 8)
    assert torch.equal(local_contrast(f), f - f.median(dim=1, keepdim=True).values)  # the default: median
    assert torch.equal(local_contrast(f, 0.0), f - f.min(dim=1, keepdim=True).values)
    low = local_contrast(f, 0.25)
    assert (low >= 0).float().mean() > 0.7 and (low < 0).any()  # a lower reference: most frames above it


def test_order_statistics_by_numpy_equal_torchs_own_exactly():
    """The CPU selects medians and largest values with numpy's partition (faster); every result
    must be the one torch's median / kthvalue / topk give, bit for bit: ties, odd and even frame
    counts, the strided layout of frame_features, float64, inference mode, and NaN (torch's rule)."""
    from streamad.models.frames import largest, local_contrast, top_mean

    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(256, 64, 32, generator=g).transpose(1, 2),  # frame_features' layout
             torch.randn(7, 33, 5, generator=g), torch.randn(3, 1, 4, generator=g),
             torch.round(torch.randn(64, 32, 8, generator=g) * 2),  # many ties
             torch.randn(9, 32, 6, generator=g).double()]
    nan = torch.randn(4, 32, 3, generator=g)
    nan[1, 5, 2] = float("nan")
    cases.append(nan)
    for f in cases:
        for q in (0.5, 0.25, 0.0):
            i = int(round(q * (f.shape[1] - 1)))
            ref = f.median(dim=1, keepdim=True).values if q == 0.5 else f.kthvalue(i + 1, dim=1, keepdim=True).values
            with torch.inference_mode():
                got = local_contrast(f, q)
            assert torch.equal(got, f - ref) or (torch.isnan(f).any() and torch.allclose(got, f - ref, equal_nan=True))
        for k in (1, min(4, f.shape[2]), f.shape[2]):
            assert torch.equal(largest(f, k, 2), f.topk(k, dim=2).values) or bool(torch.isnan(f).any())
        v = f[:, :, 0]
        for frac in (0.125, 0.5, 1.0):
            kk = max(1, int(round(frac * v.shape[1])))
            want = v.topk(kk, dim=1).values.mean(1)
            assert torch.equal(top_mean(v, frac), want) or (torch.isnan(v).any() and torch.allclose(
                top_mean(v, frac), want, equal_nan=True))
    # with a NaN the selection is torch's: the NaN row's median is NaN, as torch.median says
    assert torch.isnan(local_contrast(nan)[1, :, 2]).all() and not torch.isnan(local_contrast(nan)[0]).any()


def test_frame_bank_distances_and_a_sound_unlike_every_normal_one():
    """bank: a frame's distance to its nearest bank frame (exact against brute force); normal
    frames from two distinct sounds (a mixture of few Gaussians blurs them) are both close, a
    frame between them is far; state round trip; frame_knn is the bank alone."""
    import pytest

    from streamad.models.frame_knn import FrameBank
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(3)
    bank = FrameBank(50, seed=0).fit(torch.randn(400, 6, generator=g))
    assert bank.frames.shape == (50, 6)
    q = torch.randn(2, 5, 6, generator=g)
    brute = torch.stack([torch.stack([((bank.frames - q[i, j]).square().sum(1).sqrt()).min()
                                      for j in range(5)]) for i in range(2)])
    torch.testing.assert_close(bank.nearest(q), brute)
    with pytest.raises(ValueError, match="frame bank"):
        FrameBank(0)
    # normal windows: every frame is one of two sounds (+4 or -4 in every band), a little noise
    side = torch.where(torch.rand(60, 1, 1, 32, generator=g) < 0.5, 4.0, -4.0)
    X = side + 0.3 * torch.randn(60, 1, 8, 32, generator=g)
    between = 0.3 * torch.randn(1, 1, 8, 32, generator=g)  # 0 dB: unlike both sounds
    between[..., :28] = X[:1, ..., :28]  # only its last 4 frames are new
    for name, params in (("frame_fullgmm", {"k": 2, "bank": 200}), ("frame_knn", {"bank": 200, "floor": 0})):
        det = create(name, params).fit(X, seed=0)
        c = det.score_components(torch.cat([X[:20], between]))
        assert c["nn_top"][20] > 5 * c["nn_top"][:20].max(), name
        again = create(name, params)
        again.load_state(det.state())
        np.testing.assert_allclose(again.score_components(between)["nn_top"], c["nn_top"][20:], rtol=1e-6)
    with pytest.raises(KeyError):
        create("frame_fullgmm", {"k": 2, "bank": 200}).load_state(create("frame_fullgmm", {"k": 2}).fit(X, seed=0).state())
    from streamad.config import ConfigError

    for name, bad in (("frame_knn", 0), ("frame_knn", "1000"), ("frame_fullgmm", -1), ("frame_fullgmm", 2.5)):
        with pytest.raises(ConfigError, match=r"^model\.params\.bank: .*got"):
            create(name, {"bank": bad})


def test_frame_rows_compute_only_the_sampled_frames_equal_to_all_of_them_then_sampled():
    """frame_rows (window batch by window batch) gives exactly the rows a fit used to take from the
    features of every training frame: with and without sampling, across batch edges, with the
    band floor, deltas and local contrast."""
    from streamad.models.frames import frame_features, frame_rows, local_contrast, sample_rows

    X = torch.randn(37, 1, 6, 9)
    lo = torch.full((6,), -0.5)
    fns = [frame_features, lambda xb: frame_features(xb, 2, lo),
           lambda xb: local_contrast(frame_features(xb, 0, lo), 0.25)]
    for fn in fns:
        full = fn(X)
        full = full.reshape(-1, full.shape[2])
        for m in (50, len(full), 10 ** 6):
            pick = sample_rows(len(full), m, seed=3)
            want = full if pick is None else full[pick]
            got = frame_rows(X, fn, m, seed=3, batch=5)
            assert got.shape == want.shape and torch.equal(got, want)
    assert frame_rows(X[:0], frame_features, 10, 0).shape == (0, 6)


def test_band_top_finds_a_few_raised_bands_that_the_mixture_sum_dilutes():
    """band_top: the mean of a frame's few largest band deviations (median / MAD of the training
    frames). An event lifting 3 of 64 bands for 4 frames over a background that varies in every
    band: the mixtures' NLL (a sum over all bands) ranks some normal windows above it, band_top
    ranks it above every normal window. State round trip; bad values are one-line errors."""
    import pytest

    from streamad.config import ConfigError
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(5)
    X = torch.randn(300, 1, 64, 32, generator=g)
    normal = torch.randn(200, 1, 64, 32, generator=g)
    event = torch.randn(20, 1, 64, 32, generator=g)
    event[..., 20:23, 14:18] += 4.0
    params = {"k": 2, "diag_k": 2, "band_top": 3}
    det = create("frame_fullgmm", params).fit(X, seed=0)
    n, e = det.score_components(normal), det.score_components(event)
    assert e["band_top"].min() > n["band_top"].max()
    assert e["nll_diag"].min() < n["nll_diag"].max() and e["nll"].min() < n["nll"].max()
    again = create("frame_fullgmm", params)
    again.load_state(det.state())
    np.testing.assert_allclose(again.score_components(event)["band_top"], e["band_top"], rtol=1e-6)
    assert "band_top" not in create("frame_fullgmm", {"k": 2}).fit(X[:50], seed=0).score_components(X[:2])
    with pytest.raises(KeyError):
        create("frame_fullgmm", params).load_state(create("frame_fullgmm", {"k": 2}).fit(X[:50], seed=0).state())
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(ConfigError, match=r"^model\.params\.band_top: .*got"):
            create("frame_fullgmm", {"band_top": bad})


def test_device_copies_of_the_mixtures_score_exactly_as_the_fitted_ones():
    """On a GPU the floor, mixtures and band statistics are copied to the device once (``_copies``)
    and each batch scores there. The copies, made here on the CPU, must score every component
    exactly as the fitted parts do, also across the 256-window CPU batches, and under autocast (the
    mixtures are float32 whatever worker.precision says); a refit drops them."""
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(7)
    X = torch.randn(120, 1, 64, 32, generator=g)
    T = torch.randn(300, 1, 64, 32, generator=g) * 1.5
    det = create("frame_fullgmm", {"k": 2, "iters": 5, "diag_k": 2, "local_k": 2, "floor": 0.05,
                                   "band_top": 3}).fit(X, seed=0)
    ref = det.score_components(T)
    assert set(ref) == {"nll", "nll_top", "nll_diag", "nll_local", "nll_local_top", "band_top"}
    copied = det._patch_components(T, det._copies(torch.device("cpu")))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as worker.precision float16 is on a GPU
        under = det.score_components(T)
    for k, v in ref.items():
        np.testing.assert_array_equal(copied[k], v)
        np.testing.assert_array_equal(under[k], v)  # the mixtures stay float32 under autocast
    det._moved = ("stale",)
    det.fit(X[:60], seed=1)
    assert det._moved is None and det._parts()[2] is det.gmm  # the CPU scores with the fitted parts


def test_exposure_classifier_learns_from_labelled_windows_only_and_the_mixtures_never_see_them():
    """exposure: a frame classifier trained on normal windows against labelled ones (here: the same
    background with a few raised bands somewhere, a stand-in for mixed-in sounds). It ranks new such
    windows above every normal one; the mixtures and the band floor are bit-identical with and
    without the labelled windows (they never see them); the state round trips exactly; without
    labelled windows it is a one-line training error; bad values are one-line config errors."""
    import pytest

    from streamad.config import ConfigError
    from streamad.models.base import TrainingError
    from streamad.models.registry import create

    g = torch.Generator().manual_seed(7)

    def raised(n):
        x = torch.randn(n, 1, 32, 32, generator=g)
        for i in range(n):
            b, t = int(torch.randint(0, 28, (1,), generator=g)), int(torch.randint(0, 26, (1,), generator=g))
            x[i, :, b:b + 4, t:t + 6] += 3.0
        return x

    X, A = torch.randn(400, 1, 32, 32, generator=g), raised(200)
    params = {"k": 2, "diag_k": 2, "floor": 0.01, "local_k": 2, "exposure": 16, "exposure_steps": 200}
    det = create("frame_fullgmm", params).fit(torch.cat([X, A]), np.r_[np.zeros(400), np.ones(200)], seed=0)
    plain = create("frame_fullgmm", {**params, "exposure": 0}).fit(X, seed=0)
    s, p = det.state(), plain.state()
    assert set(s) - set(p) and all(k.startswith("exposure.") for k in set(s) - set(p))
    for k in p:
        assert torch.equal(s[k], p[k]), k
    normal, event = torch.randn(200, 1, 32, 32, generator=g), raised(40)
    n, e = det.score_components(normal), det.score_components(event)
    auc = (e["exposure"][:, None] > n["exposure"][None, :]).mean()
    assert auc > 0.95, auc
    np.testing.assert_array_equal(n["nll"], plain.score_components(normal)["nll"])
    again = create("frame_fullgmm", params)
    again.load_state(det.state())
    np.testing.assert_array_equal(again.score_components(event)["exposure"], e["exposure"])
    with pytest.raises(TrainingError, match="exposure needs labelled windows"):
        create("frame_fullgmm", params).fit(X, seed=0)
    for bad in ({"exposure": -1}, {"exposure": 2.5}, {"exposure_steps": 0}, {"exposure": True}):
        with pytest.raises(ConfigError, match=f"model.params.{next(iter(bad))}: a whole number"):
            create("frame_fullgmm", bad)
