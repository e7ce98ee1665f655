"""aetcore.preprocess: frame registration, scan shear and distortion, denoising, background, normalisation.

Ground truth comes from aetcore.simulate.tilt_series (known frame shifts and drift, Poisson noise),
and from analytic lattice images for the scan distortion.
"""
import numpy as np
import pytest
from scipy import ndimage

from aetcore.model import simulate
from aetcore.steps.preprocess import (FrameRegistration, PreprocessResult, correct_scan_distortion, denoise,
                                      estimate_affine_from_lattice, normalize, preprocess, register_frames,
                                      split_pages, subtract_background)

N_FRAMES = 6
SHAPE = (96, 96)
PIXEL = 0.5


@pytest.fixture(scope="module")
def particle():
    return simulate.pt_particle(radius=12.0)


@pytest.fixture(scope="module")
def drifting(particle):
    """Frames with rigid drift (0.8 px per frame in a random direction per angle), 1e4 e/Å² per angle."""
    pos, sp = particle
    return simulate.tilt_series(pos, sp, [-30.0, 0.0, 30.0], SHAPE, PIXEL, n_frames=N_FRAMES, drift=0.8,
                                dose=1e4, seed=1)


def _rel(x, ref):
    return float(np.linalg.norm(np.asarray(x, np.float64) - ref) / np.linalg.norm(ref))


def _shift_rms(est, frame_shifts):
    """RMS error of the recovered shifts, independent of the reference (per-angle mean removed).
    The shift that registers frame f is minus its applied shift."""
    d = est + frame_shifts
    d = d - d.mean(axis=1, keepdims=True)
    return float(np.sqrt(np.mean(d ** 2)))


# ---------------------------------------------------------------------------------- registration
@pytest.mark.parametrize("reference", ["first", "mean", 2])
def test_frame_shifts_recovered(drifting, reference):
    r = register_frames(drifting.tilts, reference=reference, shear=False)
    assert isinstance(r, FrameRegistration)
    assert r.shifts.shape == (3, N_FRAMES, 2) and r.residual.shape == (3, N_FRAMES)
    assert r.images.shape == (3, *SHAPE) and r.images.dtype == np.float32
    rms = _shift_rms(r.shifts, drifting.frame_shifts)
    assert rms < 0.1, rms
    if reference == "first":
        assert np.abs(r.shifts[:, 0]).max() < 0.1
    elif reference == "mean":
        assert np.abs(r.shifts.mean(axis=1)).max() < 0.1
    else:
        assert np.abs(r.shifts[:, 2]).max() < 0.1


def test_phase_normalization_also_recovers_shifts(drifting):
    r = register_frames(drifting.tilts, shear=False, normalization="phase")
    assert _shift_rms(r.shifts, drifting.frame_shifts) < 0.1


def test_average_beats_every_frame(drifting):
    # the first frame has no offset (no static shift), so the average sits on the clean projection
    r = register_frames(drifting.tilts, shear=False)
    err_avg = _rel(r.images, drifting.clean)
    err_frames = [_rel(drifting.tilts[:, f], drifting.clean) for f in range(N_FRAMES)]
    assert err_avg < 0.75 * min(err_frames), (err_avg, err_frames)
    # a naive mean of the drifting frames is far worse
    assert err_avg < 0.3 * _rel(drifting.tilts.mean(axis=1), drifting.clean)


def test_single_angle_frames(drifting):
    r = register_frames(drifting.tilts[1], shear=False)
    assert r.images.shape == (1, *SHAPE)
    assert _shift_rms(r.shifts, drifting.frame_shifts[1:2]) < 0.1


def _raster_frames(clean, amplitude, tau, n_frames, dose, seed):
    """Frames of a raster scan with decaying drift d(t) = amplitude (1 - exp(-t / tau)) (pixels,
    t in frame periods): row y of frame f is acquired at t = f + y / ny and displaced by d(t)."""
    n, ny, nx = clean.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    amplitude = np.asarray(amplitude, np.float64)
    frames = np.empty((n, n_frames, ny, nx))
    for f in range(n_frames):
        d = amplitude[:, None, None] * (1 - np.exp(-(f + yy / ny) / tau))[None]
        for k in range(n):
            frames[k, f] = ndimage.map_coordinates(clean[k].astype(np.float64), [yy - d[0], xx - d[1]],
                                                   order=3, mode="constant")
    scale = dose * PIXEL ** 2 / (n_frames * clean.mean())
    noisy = np.random.default_rng(seed).poisson(np.clip(frames, 0, None) * scale) / scale
    t_centre = np.arange(n_frames) + (ny // 2) / ny
    applied = amplitude[None, :] * (1 - np.exp(-t_centre / tau))[:, None]     # centre-row displacement
    return noisy.astype(np.float32), applied


def test_shear_correction_lowers_residual(particle):
    pos, sp = particle
    clean = simulate.tilt_series(pos, sp, [0.0, 25.0], SHAPE, PIXEL).clean
    amplitude = (3.0, 6.0)
    frames, applied = _raster_frames(clean, amplitude, 2.0, N_FRAMES, 1e4, seed=0)
    plain = register_frames(frames, shear=False)
    corrected = register_frames(frames, shear=True)
    assert corrected.shear and not plain.shear
    assert corrected.residual.mean() < 0.8 * plain.residual.mean(), (corrected.residual.mean(),
                                                                       plain.residual.mean())
    # the centre-row shifts are still recovered
    assert _shift_rms(corrected.shifts, np.broadcast_to(applied, (2, N_FRAMES, 2))) < 0.1
    # the estimated in-frame drift velocity decays like the true one (px per frame)
    v = corrected.drift_velocity[:, :, 1]
    assert (v[:, 0] > 1.5).all() and (v[:, -1] < 0.5).all()
    # and the average is closer to the truth (clean at frame 0's centre-row position)
    truth = ndimage.shift(clean.astype(np.float64), (0, *applied[0]), order=3)
    assert _rel(corrected.images, truth) < 0.5 * _rel(plain.images, truth)


def test_shear_of_simulated_raster_drift(particle):
    # simulate.tilt_series(raster=True): constant drift that also acts within every frame
    pos, sp = particle
    drift = np.array([[0.8, 1.6], [-1.2, 0.6]])                       # px per frame period, per angle
    s = simulate.tilt_series(pos, sp, [-20.0, 35.0], SHAPE, PIXEL, n_frames=N_FRAMES, drift=drift,
                             raster=True, dose=1e4, seed=4)
    plain = register_frames(s.tilts, shear=False)
    corrected = register_frames(s.tilts, shear=True)
    np.testing.assert_allclose(corrected.drift_velocity, np.broadcast_to(drift[:, None], (2, N_FRAMES, 2)),
                               atol=0.1)
    # a constant drift shears every frame alike, so the residuals barely differ (noise); the
    # average, though, is un-sheared only with the correction; it sits on frame 0's centre row: the clean image moved by the drift over half a frame
    centre = (SHAPE[0] // 2) / SHAPE[0]
    truth = np.stack([ndimage.shift(s.clean[k].astype(np.float64), centre * drift[k], order=3) for k in range(2)])
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert _rel(corrected.images[inner], truth[inner]) < 0.5 * _rel(plain.images[inner], truth[inner])
    # and the centre-row shifts are recovered (the frame shifts are those of row 0)
    assert _shift_rms(corrected.shifts, s.frame_shifts + centre * drift[:, None]) < 0.1


# ------------------------------------------------------------------------------------ bad input
def test_bad_frames_are_refused(drifting):
    good = drifting.tilts[0]
    with pytest.raises(ValueError, match="frames"):
        register_frames([good[0], good[1][:-1]])
    with pytest.raises(ValueError, match="frames"):
        register_frames(np.zeros((2, 3, 16, 16), np.float32))
    bad = drifting.tilts.copy()
    bad[1, 2, 5, 5] = np.nan
    with pytest.raises(ValueError, match="frames"):
        register_frames(bad)
    with pytest.raises(TypeError, match="frames"):
        register_frames("frames.tif")
    with pytest.raises(ValueError, match="frames"):
        register_frames(good[0])
    with pytest.raises(ValueError, match="reference"):
        register_frames(good, reference=N_FRAMES)
    with pytest.raises(ValueError, match="reference"):
        register_frames(good, reference="last")
    with pytest.raises(ValueError, match="upsample"):
        register_frames(good, upsample=0)
    with pytest.raises(ValueError, match="frames_or_tilts"):
        preprocess([good, good[:, :-1]])
    with pytest.raises(ValueError, match="frames_or_tilts"):
        preprocess(np.zeros((2, 3, 16, 16)))
    with pytest.raises(ValueError, match="frames_or_tilts"):
        preprocess(good)            # 3-D with frames=True is ambiguous
    with pytest.raises(ValueError, match="images"):
        normalize(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="images"):
        denoise(np.full((8, 8), np.nan))


def test_split_pages(drifting):
    pages = drifting.tilts.reshape(-1, *SHAPE)
    frames = split_pages(pages, N_FRAMES)
    assert frames.shape == drifting.tilts.shape
    np.testing.assert_array_equal(frames[2, 4], pages[2 * N_FRAMES + 4])
    with pytest.raises(ValueError, match="n_frames"):
        split_pages(pages, 7)
    with pytest.raises(ValueError, match="pages"):
        split_pages(pages[0], 1)


# ------------------------------------------------------------------------------- scan distortion
def _lattice(n, a, D, lattice="square"):
    """Gaussian columns (sigma = a/6) on a lattice of spacing a px distorted by D: a column at ideal
    position r (relative to n//2, (y, x)) appears at D r."""
    c = n // 2
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    u = np.linalg.solve(D, np.stack([yy - c, xx - c]).reshape(2, -1))
    sigma = a / 6
    if lattice == "square":
        Areal = a * np.eye(2)
    else:   # first vector along +x, second at 60° towards +y; columns of Areal in (y, x)
        Areal = a * np.array([[0.0, np.sin(np.pi / 3)], [1.0, np.cos(np.pi / 3)]])
    frac = np.linalg.solve(Areal, u)
    img = 0.0
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            p = Areal @ ((frac + 0.5) % 1 - 0.5 + np.array([[i], [j]]))
            img = img + np.exp(-(p ** 2).sum(0) / (2 * sigma ** 2))
    return img.reshape(n, n)


@pytest.mark.parametrize("lattice", ["square", "hexagonal"])
def test_affine_from_lattice(lattice):
    D = np.array([[1.01, 0.02], [0.0, 1.0]])          # 1 % scale along y, 2 % shear
    n, a = 128, 8.0
    distorted = _lattice(n, a, D, lattice)
    ideal = _lattice(n, a, np.eye(2), lattice)
    est = estimate_affine_from_lattice(distorted, a, lattice=lattice)
    assert np.abs(est - D).max() < 0.002, est
    fixed = correct_scan_distortion(distorted, est)
    inner = (slice(n // 8, -n // 8),) * 2             # away from the resampled edges
    err_before = _rel(distorted[inner], ideal[inner])
    err_after = _rel(fixed[inner], ideal[inner])
    assert err_after < 0.02 and err_after < 0.05 * err_before, (err_before, err_after)
    # orientation unknown: the symmetric part of D is returned
    sym = estimate_affine_from_lattice(distorted, a, lattice=lattice, angle=None)
    U, s, Vt = np.linalg.svd(D)
    np.testing.assert_allclose(sym, Vt.T @ np.diag(s) @ Vt, atol=0.002)


def test_callable_distortion_matches_matrix():
    img = _lattice(64, 8.0, np.eye(2))
    M = np.array([[1.0, 0.03], [-0.01, 0.98]])
    c = 32

    def f(y, x):
        return c + M[0, 0] * (y - c) + M[0, 1] * (x - c), c + M[1, 0] * (y - c) + M[1, 1] * (x - c)

    np.testing.assert_allclose(correct_scan_distortion(img, f), correct_scan_distortion(img, M), atol=1e-5)
    np.testing.assert_allclose(correct_scan_distortion(img[None], None)[0], img, atol=1e-6)
    with pytest.raises(ValueError, match="matrix"):
        correct_scan_distortion(img, np.eye(3))
    with pytest.raises(ValueError, match="matrix"):
        correct_scan_distortion(img, lambda y, x: (y[:-1], x))


# ----------------------------------------------------------------------------------------- denoise
@pytest.fixture(scope="module")
def noisy(particle):
    pos, sp = particle
    return simulate.tilt_series(pos, sp, [0.0, 40.0], SHAPE, PIXEL, dose=300, read_noise=0.05, seed=3)


def _available(method):
    if method == "wavelet":
        pytest.importorskip("pywt")
    if method == "bm3d":
        pytest.importorskip("bm3d")


@pytest.mark.parametrize("method", ["nlm", "tv", "wavelet", "bm3d"])
def test_denoise_lowers_error(noisy, method):
    _available(method)
    out = denoise(noisy.tilts, method)
    assert out.shape == noisy.tilts.shape and out.dtype == np.float32
    assert _rel(out, noisy.clean) < _rel(noisy.tilts, noisy.clean)


def test_missing_optional_denoisers_say_how_to_install():
    img = np.random.default_rng(0).normal(size=(16, 16))
    for method, module, hint in (("bm3d", "bm3d", "pip install bm3d"), ("wavelet", "pywt", "PyWavelets")):
        try:
            __import__(module)
        except ImportError:
            with pytest.raises(ImportError, match=hint):
                denoise(img, method)
    try:
        import bm3d  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="licence"):
            denoise(img, "bm3d")
    with pytest.raises(ValueError, match="method"):
        denoise(img, "median")


# ------------------------------------------------------------------------- background, normalize
@pytest.mark.parametrize("model", ["constant", "plane"])
def test_background_removed(noisy, model):
    clean = noisy.clean.astype(np.float64)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]] - SHAPE[0] // 2
    bg = 0.3 * clean.mean() + (0.002 * yy - 0.003 * xx if model == "plane" else 0.0)
    out, coef = subtract_background(clean + bg, model=model)
    assert _rel(out, clean) < 0.01
    assert coef.shape == (2, 3)
    # with an explicit background mask (the outer border)
    mask = np.ones(SHAPE, bool)
    mask[8:-8, 8:-8] = False
    out2, _ = subtract_background(clean + bg, model=model, mask=mask)
    assert _rel(out2, clean) < 0.01


def test_normalize_equal_totals(noisy):
    imgs = noisy.clean * np.array([1.0, 1.37])[:, None, None]
    out, scales = normalize(imgs)
    totals = out.astype(np.float64).sum(axis=(1, 2))
    assert np.ptp(totals) / totals.mean() < 1e-6
    np.testing.assert_allclose(totals.mean(), imgs.astype(np.float64).sum(axis=(1, 2)).mean(), rtol=1e-6)
    np.testing.assert_allclose(scales[1] / scales[0], 1 / 1.37, rtol=1e-6)


# ------------------------------------------------------------------------------------- pipeline
def test_preprocess_records_steps(particle):
    pos, sp = particle
    s = simulate.tilt_series(pos, sp, [-20.0, 20.0], SHAPE, PIXEL, n_frames=4, drift=0.6, dose=1e4,
                             background=0.4, read_noise=0.02, seed=5)
    res = preprocess(s.tilts, denoise="tv")
    assert isinstance(res, PreprocessResult)
    assert res.tilts.shape == (2, *SHAPE) and res.tilts.dtype == np.float32
    assert res.registration is not None and res.registration.shifts.shape == (2, 4, 2)
    assert [st.split("(")[0].split(":")[0] for st in res.steps] == [
        "register_frames", "denoise", "subtract_background", "normalize"]
    np.testing.assert_allclose(res.background[:, 0], 0.4, atol=0.02)
    totals = res.tilts.astype(np.float64).sum(axis=(1, 2))
    assert np.ptp(totals) / totals.mean() < 1e-6
    assert _rel(res.tilts / res.scales[:, None, None], s.clean) < 0.1
    # a tilt series without frames
    res2 = preprocess(s.tilts[:, 0], frames=False, background="constant", normalize=False)
    assert res2.registration is None and res2.scales is None
    assert res2.steps[0].startswith("subtract_background")
