"""Extended objects (issue 13 item 2): detection from the image borders, the slab found from a volume,
the pixels whose rays stay inside the box, and the evidence step that counts only those pixels.

Pinned on the measured Ta film of ../shared/data/ta_film (extended) against simulated particles and
the fept_dev series (not extended), on a simulated slab of atoms against its known thickness, and on
the ray mask against projections of a uniform slab by aetcore's projector."""
from pathlib import Path

import numpy as np
import pytest

from aetcore.model import projection as project, simulate
from aetcore.steps.extended import detect_extended, ray_mask, slab_extent, slab_support

SHARED = Path(__file__).resolve().parents[1].parent.parent / "shared" / "data"
FILM = SHARED / "ta_film"
FEPT = SHARED / "fept_dev"
PIXEL = 0.3216  # Å, the film's README


def _film(k=1):
    from aetcore.io import read_angles, read_tilts
    from aetcore.model.geometry import angles_from_convention
    tilts = read_tilts(FILM / "projections" / f"Projections_area{k}.mat")
    angles = angles_from_convention(read_angles(FILM / "angles.mat", tilts.shape[0]), "resire")
    return tilts, angles


@pytest.mark.skipif(not FILM.exists(), reason="../shared/data/ta_film is not present")
def test_the_ta_film_is_detected_as_extended():
    for k in (1, 5):
        d = detect_extended(_film(k)[0])
        assert d.extended, (k, d)
        assert sum(v > 0.5 for v in d.ratios.values()) >= 3, d.ratios     # the film crosses the borders


def test_a_simulated_particle_is_not_extended_and_a_slab_is():
    rng = np.random.default_rng(1)
    angles = np.linspace(-60, 60, 13)
    pos, sp = simulate.pt_particle(radius=8.0, seed=2)[:2]
    s = simulate.tilt_series(pos, sp, angles, (64, 64), 0.4, dose=5e4, background=3.0, read_noise=0.2, seed=3)
    d = detect_extended(s.tilts)
    assert not d.extended and max(d.ratios.values()) < 0.2, d
    # the same atoms repeated over a slab that is wider than the field of view: extended
    slab = rng.uniform([-30, -30, -4], [30, 30, 4], (1500, 3))
    s = simulate.tilt_series(slab, ["Ta"] * len(slab), angles, (64, 64), 0.4, dose=5e4, background=3.0,
                             read_noise=0.2, seed=3)
    assert detect_extended(s.tilts).extended


@pytest.mark.skipif(not FEPT.exists(), reason="../shared/data/fept_dev is not present")
def test_the_fept_dev_particles_are_not_extended():
    from aetcore.io import read_tilts
    for case in sorted(p for p in FEPT.iterdir() if p.is_dir()):
        d = detect_extended(read_tilts(case / "tilts.tif"))
        assert not d.extended and max(d.ratios.values()) < 0.3, (case.name, d)   # 0.06-0.21


def test_slab_extent_of_a_simulated_film_matches_its_atoms():
    rng = np.random.default_rng(4)
    ps = 0.4
    atoms = rng.uniform([-12, -12, -6], [12, 12, 4], (700, 3))     # a film from z = -6 to +4 Å
    vol = simulate.ground_truth_volume(atoms, ["Ta"] * len(atoms), (64, 64, 64), ps)
    vol = vol + rng.normal(0, 0.02 * vol.max(), vol.shape)       # vacuum noise
    z0, z1 = slab_extent(vol, ps, margin=0.0)
    # the occupancy profile falls off over about an atom radius beyond the outermost centres
    assert -7.5 < z0 < -5.0 and 3.0 < z1 < 5.5, (z0, z1)
    z0m, z1m = slab_extent(vol, ps, margin=1.5)
    assert z0m == pytest.approx(z0 - 1.5) and z1m == pytest.approx(z1 + 1.5)
    sup = slab_support(vol.shape, ps, (z0, z1))
    z = (np.arange(64) - 32) * ps
    assert np.array_equal(sup[:, 10, 20], (z >= z0) & (z <= z1))


def test_ray_mask_marks_the_pixels_that_see_the_whole_slab_inside_the_box():
    """A uniform slab filling the box, projected by aetcore's projector: a pixel of the mask sees the
    full path length t / cos(theta); every pixel outside it sees less (its ray leaves the box)."""
    ps, nz, ny, nx = 1.0, 40, 24, 40
    extent = (-6.0, 6.0)
    angles = np.array([0.0, 20.0, -35.0, 50.0])
    vol = slab_support((nz, ny, nx), ps, (-6.0 + 1e-9, 6.0)).astype(np.float32)
    proj = project.project_volume(vol, angles, threads=1)
    m = ray_mask(angles, (ny, nx), ps, extent, (nz, ny, nx))
    assert m[0].all()
    for k, th in enumerate(angles):
        full = 13.0 / np.cos(np.radians(th))                      # 13 planes of voxels, slanted
        inside = proj[k][m[k]]
        assert np.all(np.abs(inside - full) < 0.1 * full), (th, inside.min(), inside.max(), full)
        # the mask is the set of full-length rays, up to a pixel at its edges
        full_rays = np.abs(proj[k] - full) < 0.1 * full
        assert (full_rays != m[k]).sum() <= 2 * 2 * ny, th
    assert 0 < m[3].sum() < m[1].sum() < m[0].sum()


@pytest.mark.skipif(not FILM.exists(), reason="../shared/data/ta_film is not present")
def test_slab_support_drops_the_vacuum_peaks_of_the_film_and_keeps_its_atoms():
    """The source's RESIRE volume of area 1: the peaks traced above and below the published film are
    dropped by the slab support, and the published atoms found stay found."""
    from aetcore.io.matlab import mat_model, read_mat_variable
    from aetcore.io.matlab import mat_volume
    from aetcore.steps.trace import trace_atoms
    from scipy.spatial import cKDTree
    vol = mat_volume(FILM / "resire_reconstructions" / "ReconObj_sub1.mat")
    model, _ = mat_model(FILM / "published_model_rows1-2.mat")
    centre = read_mat_variable(FILM / "alignPara.mat", "CropCen")[0].astype(float)
    half = read_mat_variable(FILM / "alignPara.mat", "CropHalf")[0].astype(float)
    pub = model + (np.array([201.0, 176.0, 171.0]) - centre) * PIXEL
    pub = pub[np.all(np.abs(pub[:, :2]) <= half[:2] * PIXEL - 3.0, axis=1)]
    zlo, zhi = pub[:, 2].min() - 1.0, pub[:, 2].max() + 1.0
    z0, z1 = slab_extent(vol, PIXEL, margin=1.5)
    assert zlo - 2.5 < z0 < zlo + 1.0 and zhi - 1.0 < z1 < zhi + 2.5, ((z0, z1), (zlo, zhi))

    def counts(support):
        tr = trace_atoms(vol, PIXEL, support=support, threads=1)
        lateral = np.all(np.abs(tr.positions[:, :2]) <= half[:2] * PIXEL - 3.0, axis=1)
        p = tr.positions[lateral]
        outside = int(np.sum((p[:, 2] < zlo) | (p[:, 2] > zhi)))
        d, _ = cKDTree(p).query(pub)
        return outside, int(np.sum(d < 1.0))

    out_none, found_none = counts(None)
    out_slab, found_slab = counts(slab_support(vol.shape, PIXEL, (z0, z1)))
    assert out_none > 100 and out_slab < 0.2 * out_none, (out_none, out_slab)
    assert found_slab >= found_none - 3, (found_none, found_slab)


def _film_with_mass_outside_the_box():
    """Atoms in a slab inside the box, and more of the same slab beyond the box laterally, whose mass
    enters the images at high tilt (as a film's does)."""
    rng = np.random.default_rng(11)
    ps, shape = 0.4, (32, 44)                          # box: |x| <= 8.8 Å, |y| <= 6.4 Å
    angles = np.linspace(-60, 60, 9)
    inside = rng.uniform([-6.5, -4.5, -3.0], [6.5, 4.5, 3.0], (400, 3))
    from scipy.spatial import cKDTree
    keep = []
    for p in inside:                                    # atoms at least 2.2 Å apart
        if not keep or cKDTree(keep).query(p)[0] > 2.2:
            keep.append(p)
    inside = np.array(keep[:14])
    outside = np.array([[sx * rng.uniform(11, 20), rng.uniform(-4.5, 4.5), rng.uniform(-3, 3)]
                        for sx in (-1, 1) for _ in range(30)])
    model = project.atom_model(["Pt"], b_factors=[2.0])
    clean = project.project_atoms(np.concatenate([inside, outside]), ["Pt"] * (len(inside) + len(outside)), angles,
                                  shape, ps, model=model, threads=1)
    tilts = (clean + rng.normal(0, 0.01 * clean.max(), clean.shape)).astype(np.float32)
    return inside, tilts, angles, ps, shape, model


def test_evidence_with_the_ray_mask_ignores_the_mass_outside_the_box():
    """Without the mask the evidence step adds atoms to explain the mass from outside the box; with
    the pixels whose rays stay in the box it keeps the true atoms and adds none."""
    from scipy.spatial import cKDTree
    from aetcore.steps.evidence import decide_atoms
    inside, tilts, angles, ps, shape, model = _film_with_mass_outside_the_box()
    slab = (-4.0, 4.0)
    mask = ray_mask(angles, shape, ps, slab)
    assert mask[4].all() and not mask[0].all()           # all of the 0° image, part of the 60° one
    kw = dict(model=model, rounds=2, iterations=10, threads=1)
    plain = decide_atoms(inside, ["Pt"] * len(inside), tilts, angles, ps, **kw)
    masked = decide_atoms(inside, ["Pt"] * len(inside), tilts, angles, ps, pixel_mask=mask, slab=slab, **kw)
    assert plain.added.sum() >= 3, plain.history         # the outside mass asks for atoms
    assert masked.added.sum() == 0, masked.history
    d, _ = cKDTree(masked.positions).query(inside)
    assert len(masked.positions) == len(inside) and np.all(d < 0.3), d
    assert np.all(masked.evidence.presence > 0)


def test_refinement_of_the_imputed_series_is_not_pulled_by_the_mass_outside_the_box():
    """Refining against the series with the pixels outside the ray mask imputed from the model
    (evidence.impute_series) recovers the true positions; against the raw series, the atoms move
    towards the unexplained mass."""
    from aetcore.steps.evidence import impute_series
    from aetcore.steps.refine import refine
    inside, tilts, angles, ps, shape, model = _film_with_mass_outside_the_box()
    rng = np.random.default_rng(5)
    start = inside + rng.normal(0, 0.15, inside.shape)
    lab = np.zeros(len(inside), np.int32)
    mask = ray_mask(angles, shape, ps, (-4.0, 4.0))
    kw = dict(model=model, threads=1, iterations=60, refine_b=False)
    raw = refine(start, lab, tilts, angles, ps, **kw)
    pos = start
    for _ in range(3):                  # expectation-maximisation: impute, refine, repeat
        pos = refine(pos, lab, impute_series(tilts, mask, pos, lab, model, angles, ps, 1), angles, ps, **kw).positions
    err_raw = np.sqrt(np.mean(np.sum((raw.positions - inside) ** 2, axis=1)))
    err_imp = np.sqrt(np.mean(np.sum((pos - inside) ** 2, axis=1)))
    assert err_imp < 0.05 and err_raw > 2 * err_imp, (err_raw, err_imp)


def test_padded_resire_reconstructs_the_box_of_a_film_better_than_resire_in_the_box():
    """A slab of atoms four times wider than the field of view: RESIRE in a box padded along x and
    cropped back is closer to the true volume of the box than RESIRE in the box (whose rays at high
    tilt carry mass it must put inside)."""
    from aetcore.steps.extended import padded_resire
    from aetcore.steps.reconstruct import resire
    rng = np.random.default_rng(8)
    ps, ny, nx = 0.5, 20, 32
    atoms = rng.uniform([-32, -5, -3], [32, 5, 3], (1400, 3))
    angles = np.linspace(-60, 60, 13)
    tilts = project.project_atoms(atoms, ["Ta"] * len(atoms), angles, (ny, nx), ps, threads=1).astype(np.float32)
    truth = simulate.ground_truth_volume(atoms, ["Ta"] * len(atoms), (nx, ny, nx), ps)

    def error(vol):
        return float(np.linalg.norm(vol - truth) / np.linalg.norm(truth))

    boxed = resire(tilts, angles, pixel_size=ps, iterations=60, threads=1, progress=False).volume
    padded = padded_resire(tilts, angles, pixel_size=ps, pad=0.75, iterations=60, threads=1)
    assert padded.volume.shape == (nx, ny, nx) and padded.parameters["pad"] == 24
    assert error(padded.volume) < 0.85 * error(boxed), (error(padded.volume), error(boxed))


def test_padded_resire_accelerated_matches_four_times_the_plain_iterations():
    """The default (accelerated) descent of padded_resire reaches with k iterations the error against the
    true volume that plain RESIRE reaches with 4 k (the film's 25 vs 100): on the slab of the test above,
    20 vs 80 iterations: 0.649 vs 0.652; 30 vs 120: 0.609 vs 0.632."""
    from aetcore.steps.extended import padded_resire
    rng = np.random.default_rng(8)
    ps, ny, nx = 0.5, 20, 32
    atoms = rng.uniform([-32, -5, -3], [32, 5, 3], (1400, 3))
    angles = np.linspace(-60, 60, 13)
    tilts = project.project_atoms(atoms, ["Ta"] * len(atoms), angles, (ny, nx), ps, threads=1).astype(np.float32)
    truth = simulate.ground_truth_volume(atoms, ["Ta"] * len(atoms), (nx, ny, nx), ps)

    def error(vol):
        return float(np.linalg.norm(vol - truth) / np.linalg.norm(truth))

    for k in (20, 30):
        fast = padded_resire(tilts, angles, pixel_size=ps, pad=0.75, iterations=k, threads=1)
        plain = padded_resire(tilts, angles, pixel_size=ps, pad=0.75, iterations=4 * k, accelerate=False, threads=1)
        assert fast.parameters["accelerate"] and not plain.parameters["accelerate"]
        assert error(fast.volume) < 1.01 * error(plain.volume), (k, error(fast.volume), error(plain.volume))


@pytest.mark.skipif(not FILM.exists(), reason="../shared/data/ta_film is not present")
def test_aet_run_of_the_film_reconstructs_full_and_halves_with_the_extended_settings(tmp_path, monkeypatch):
    """aet run on the film: the full reconstruction with `extended_iterations`, each half (every second
    image) from scratch with `extended_half_set_iterations`, both with `extended_accelerate`; the
    defaults are padded_resire's and HALF_SET_ITERATIONS."""
    import aetcore.steps.extended as ext
    from aetcore.app import config as aconfig
    from aetcore.app.folder import run
    d = aconfig.DEFAULTS["reconstruct"]
    assert d["extended_iterations"] == 25 and d["extended_accelerate"] is True
    assert d["extended_half_set_iterations"] == ext.HALF_SET_ITERATIONS == 10
    calls = []
    real = ext.padded_resire

    def spy(tilts, angles, **kw):
        calls.append((len(tilts), kw["iterations"], kw["accelerate"], kw.get("initial")))
        return real(tilts, angles, **kw)
    monkeypatch.setattr(ext, "padded_resire", spy)
    run(FILM / "projections" / "Projections_area1.mat", FILM / "angles.mat", PIXEL, ["Ta"], tmp_path / "out",
        angle_convention="resire", threads=1,
        config={"reconstruct": {"extended_iterations": 3, "extended_half_set_iterations": 2,
                                "extended_accelerate": False}})
    assert calls == [(46, 3, False, None), (23, 2, False, None), (23, 2, False, None)]
