"""Sub-area stitching (aetcore.steps.stitch): the crop table's geometry against the Ta film's README
and its measured projections, atoms of overlapping areas kept once, volumes stitched on the covered
region."""
import numpy as np
import pytest
import scipy.io

from aetcore.steps.stitch import (area_offsets, edge_weights, owner_score, stitch_atoms, stitch_volumes)

from conftest import SHARED

TA = SHARED / "ta_film"
PIXEL = 0.3216
FULL = (401, 351, 341)


def _ta():
    if not TA.exists():
        pytest.skip(f"{TA} is not present")
    from aetcore.io.matlab import mat_model, read_mat_variable
    cen = read_mat_variable(TA / "alignPara.mat", "CropCen").astype(int)
    half = read_mat_variable(TA / "alignPara.mat", "CropHalf").astype(int)
    return cen, half, mat_model(TA / "published_model_rows1-2.mat")[0]


def test_offsets_follow_the_readme_formula():
    """README: full-volume voxel (1-based) = model / 0.3216 + [201, 176, 171]. An atom at area k's
    local index i (origin n // 2 = CropHalf) is the full 0-based index CropCen - 1 - CropHalf + i."""
    cen, half, model = _ta()
    voxel_1based = model / PIXEL + np.array([201, 176, 171])
    for k in (1, 5, 17, 29):
        local = model - area_offsets(cen[k - 1], FULL, PIXEL)[0]          # Å about the area's n // 2
        full_0based = local / PIXEL + half[k - 1] + cen[k - 1] - 1 - half[k - 1]
        np.testing.assert_allclose(full_0based, voxel_1based - 1, atol=1e-4)
    # and a synthetic table: the origin of an odd full axis is its middle voxel
    np.testing.assert_allclose(area_offsets([[6, 3, 1]], (11, 5, 3), 0.5), [[0.0, 0.0, -0.5]])


@pytest.mark.parametrize("k", [1, 17])
def test_offsets_put_the_published_model_on_the_measured_image(k):
    """The published model moved into area k's frame by area_offsets and projected at the tilt nearest
    0 matches the measured image better than with the area shifted by 2 voxels along x or y (area 17:
    row 2 of the grid, another size)."""
    cen, half, model = _ta()
    from aetcore.io import read_angles, read_tilts
    from aetcore.model.geometry import angles_from_convention
    from aetcore.model.projection import project_atoms
    tilts = read_tilts(TA / "projections" / f"Projections_area{k}.mat")
    angles = angles_from_convention(read_angles(TA / "angles.mat", tilts.shape[0]), "resire")
    i = int(np.argmin(np.abs(read_angles(TA / "angles.mat", tilts.shape[0])[:, 1])))
    off = area_offsets(cen[k - 1], FULL, PIXEL)[0]

    def corr(shift_vox):
        local = model - off - np.asarray(shift_vox) * PIXEL
        img = project_atoms(local, ["Ta"] * len(local), angles[i:i + 1], tilts.shape[1:], PIXEL, heights=1.0,
                            b_factors=5.0)[0]
        return float(np.corrcoef(img.ravel(), tilts[i].ravel())[0, 1])

    best = corr((0, 0, 0))
    assert best > 0.5
    for s in ((2, 0, 0), (-2, 0, 0), (0, 2, 0), (0, -2, 0)):
        assert corr(s) < best - 0.05, s


def test_owner_is_the_deeper_area_and_the_midline_between_neighbours():
    off = area_offsets([[21, 11, 5], [31, 11, 5]], (51, 21, 9), 1.0)     # x offsets -5 and +5 Å
    half = np.array([[20, 10, 4], [20, 10, 4]])
    pts = np.array([[-0.2, 0, 0], [0.2, 0, 0], [-0.2, 9.9, 0], [0.2, -9.9, 0], [-30, 0, 0]])
    owner = np.argmax(owner_score(pts, off, half, 1.0), axis=1)
    assert owner.tolist() == [0, 1, 0, 1, 0]   # near the y edges too: the product of depths does not tie


def test_an_atom_traced_by_two_areas_is_kept_once_across_the_ownership_boundary():
    """Two areas side by side own the half-spaces x < 0 and x > 0. Atom A is traced at x = -0.2 Å by
    area 0 and x = +0.2 Å by area 1 (each copy on its own side: kept twice without the matching); atom
    B at +0.2 Å by area 0 and -0.2 Å by area 1 (each on the other's side: lost without it)."""
    centres, halves, shape = [[21, 11, 5], [31, 11, 5]], [[20, 10, 4], [20, 10, 4]], (51, 21, 9)
    off = area_offsets(centres, shape, 1.0)
    a_true, b_true = np.array([0.0, -4.0, 0.0]), np.array([0.0, 4.0, 0.0])
    far0, far1 = np.array([-12.0, 0, 0]), np.array([12.0, 0, 0])
    area0 = np.array([a_true + [-0.2, 0, 0], b_true + [0.2, 0, 0], far0]) - off[0]
    area1 = np.array([a_true + [0.2, 0, 0], b_true + [-0.2, 0, 0], far1]) - off[1]
    st = stitch_atoms([area0, area1], centres, halves, shape, 1.0)
    assert len(st) == 4 and st.n_merged == 2 and st.n_not_owned == 0
    got = st.positions[np.lexsort(st.positions.T[::-1])]
    want = np.array([far0, a_true, b_true, far1])
    np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])], atol=1e-9)
    np.testing.assert_allclose(st.pair_distances, [0.4, 0.4])
    # an atom the owner did not trace is dropped; one only its own area covers is kept
    st = stitch_atoms([np.array([[2.0, 0, 0]]) - off[0], np.empty((0, 3))], centres, halves, shape, 1.0)
    assert len(st) == 0 and st.n_not_owned == 1
    st = stitch_atoms([np.array([[-2.0, 0, 0]]) - off[0], np.empty((0, 3))], centres, halves, shape, 1.0)
    assert len(st) == 1 and st.area.tolist() == [0] and st.seen.tolist() == [1]


def _film(shape, pixel, rng, spacing=2.6, z_half=2.4):
    """Atoms of a film through the whole lateral extent of a `shape` (dim1, dim2, dim3) volume, at
    least `spacing` Å apart, and the volume of their Gaussians vol[z, y, x]."""
    n = np.asarray(shape)
    lo, hi = -(n // 2) * pixel, (n - 1 - n // 2) * pixel
    atoms = []
    for c in np.column_stack([rng.uniform(lo[0] + 1, hi[0] - 1, 3000), rng.uniform(lo[1] + 1, hi[1] - 1, 3000),
                              rng.uniform(-z_half, z_half, 3000)]):
        if not atoms or np.min(np.linalg.norm(np.asarray(atoms) - c, axis=1)) > spacing:
            atoms.append(c)
    atoms = np.asarray(atoms)
    z, y, x = (((np.arange(n[i]) - n[i] // 2) * pixel) for i in (2, 1, 0))
    vol = np.zeros((n[2], n[1], n[0]), np.float32)
    sigma = 0.45
    for a in atoms:
        vol += (np.exp(-(z - a[2]) ** 2 / (2 * sigma ** 2))[:, None, None]
                * np.exp(-(y - a[1]) ** 2 / (2 * sigma ** 2))[None, :, None]
                * np.exp(-(x - a[0]) ** 2 / (2 * sigma ** 2))[None, None, :]).astype(np.float32)
    return atoms, vol


def _crop(vol, centre, half):
    """Area box (1-based CropCen ± CropHalf along dim1, dim2, dim3) of vol[z, y, x]."""
    lo = np.asarray(centre) - np.asarray(half) - 1
    hi = np.asarray(centre) + np.asarray(half)
    return vol[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]


@pytest.fixture(scope="module")
def three_areas(tmp_path_factory):
    """A synthetic film volume of Gaussian atoms, three overlapping areas cut from it, their crop table
    written as the source writes it (uint16/uint8 .mat) and read back by aet areas' reader."""
    from aetcore.app.areas import read_crop_table
    pixel, shape = 0.4, (71, 31, 25)
    atoms, vol = _film(shape, pixel, np.random.default_rng(7))
    path = tmp_path_factory.mktemp("stitch") / "crop.mat"
    scipy.io.savemat(path, {"CropCen": np.array([[21, 16, 13], [36, 16, 13], [51, 16, 13]], np.uint16),
                            "CropHalf": np.array([[20, 15, 12]] * 3, np.uint8)})
    centres, halves = read_crop_table(path)
    return pixel, shape, atoms, vol, centres, halves


def test_traced_areas_stitch_to_the_truth_without_duplicates(three_areas):
    from aetcore.quality.scoring import match_atoms
    from aetcore.steps.trace import trace_atoms
    pixel, shape, truth, vol, centres, halves = three_areas
    off = area_offsets(centres, shape, pixel)
    rng = np.random.default_rng(1)   # each area's own measurement error
    per_area = [trace_atoms(_crop(vol, c, h), pixel, threads=1).positions for c, h in zip(centres, halves)]
    per_area = [p + rng.normal(0.0, 0.1, p.shape) for p in per_area]
    st = stitch_atoms(per_area, centres, halves, shape, pixel)
    assert st.n_merged > 20 and st.n_traced > len(st) + 20       # the overlaps were traced twice
    # no atom twice: the truth's atoms are >= 2.6 Å apart
    d = np.linalg.norm(st.positions[:, None] - st.positions[None], axis=2) + np.eye(len(st)) * 99
    assert d.min() > 2.0
    # every true atom once, in the full-volume frame (no translation allowed), away from the outer edges
    ext = (halves[:, :2] + 0.5) * pixel
    lo, hi = (off[:, :2] - ext).min(axis=0) + 1.0, (off[:, :2] + ext).max(axis=0) - 1.0
    inner = lambda p: np.all((p[:, :2] > lo) & (p[:, :2] < hi), axis=1)  # noqa: E731
    m = match_atoms(truth[inner(truth)], None, st.positions[inner(st.positions)], None, register=False)
    assert m.recall == 1.0 and m.precision == 1.0
    assert m.rmsd_pm < 15.0        # 0.1 Å per axis per area, averaged where two areas traced an atom


def test_volumes_stitch_back_to_the_full_volume(three_areas):
    pixel, shape, _, vol, centres, halves = three_areas
    crops = [_crop(vol, c, h).copy() for c, h in zip(centres, halves)]
    out, start = stitch_volumes(crops, centres, shape)
    assert start.tolist() == [0, 0, 0] and out.shape == vol.shape
    np.testing.assert_allclose(out, vol, rtol=1e-5, atol=1e-6)
    # areas that disagree by a constant: the trimmed edge of one takes the other's value; the middle of
    # an overlap is a weighted mean of both
    marked = [c * 0 + float(k + 1) for k, c in enumerate(crops)]
    out, _ = stitch_volumes(marked, centres, shape, edge_trim=4, taper=8)
    # areas 0, 1, 2 cover dim1 0..40, 15..55, 30..70 (0-based)
    assert out[12, 15, 17] == pytest.approx(1.0)      # 2 voxels into area 1: area 0 alone
    assert out[12, 15, 53] == pytest.approx(3.0)      # 2 voxels from area 1's far edge: area 2 alone
    assert out[12, 15, 28] == pytest.approx(1.5)      # deep in areas 0 and 1: their mean
    assert out[12, 15, 0] == pytest.approx(1.0) and out[12, 15, 70] == pytest.approx(3.0)  # outer border
    w = edge_weights(21, 4, 8)
    assert w[:4].tolist() == [0, 0, 0, 0] and w[10] == 7 / 9 and np.all(np.diff(w[:11]) >= 0)


def test_bad_input_is_refused_naming_the_argument():
    centres, halves, shape = [[21, 11, 5], [31, 11, 5]], [[20, 10, 4], [20, 10, 4]], (51, 21, 9)
    one = np.zeros((1, 3))
    with pytest.raises(ValueError, match="merge_distance"):
        stitch_atoms([one, one], centres, halves, shape, 1.0, merge_distance=0.0)
    with pytest.raises(ValueError, match="positions: expected one"):
        stitch_atoms([one], centres, halves, shape, 1.0)
    with pytest.raises(ValueError, match=r"positions\[1\]"):
        stitch_atoms([one, np.zeros((2, 2))], centres, halves, shape, 1.0)
    with pytest.raises(ValueError, match="volume_shape"):
        stitch_atoms([one, one], centres, halves, (51, 21), 1.0)
    with pytest.raises(ValueError, match="CropHalf"):
        stitch_atoms([one, one], centres, [[20, 10]] * 2, shape, 1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        stitch_atoms([one, one], centres, halves, shape, -1.0)
    with pytest.raises(ValueError, match="volumes: expected one volume per area"):
        stitch_volumes([np.zeros((9, 21, 41), np.float32)], centres, shape)
