"""aet areas: sub-area AET end to end on two small simulated areas of a film, and its argument errors."""
import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import scipy.io

from aetcore.app.cli import main as aet

PIXEL = 0.4
SHAPE = (61, 25, 41)                                   # full volume, voxels (dim1, dim2, dim3)
CENTRES = np.array([[23, 13, 21], [39, 13, 21]])       # two areas 16 voxels apart along dim1
HALVES = np.array([[20, 12, 20], [20, 12, 20]])        # 41 x 25 px images
FAST = """[reconstruct]
iterations = 30
half_set_fsc = false
[refine]
enabled = false
holdout_folds = 0
[evidence]
enabled = false
"""


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A Ta film (atoms >= 2.6 Å apart, 5 Å thick) wider than the full volume along dim1, its two
    areas' tilt series written as the source writes them (MATLAB Proj_sub [dim1, dim2, k]), the crop
    table (uint16 / uint8 .mat), the angles and a quick configuration."""
    from aetcore.model.simulate import tilt_series
    from aetcore.steps.stitch import area_offsets
    root = tmp_path_factory.mktemp("areas")
    rng = np.random.default_rng(3)
    n = np.array(SHAPE)
    lo, hi = -(n // 2) * PIXEL, (n - 1 - n // 2) * PIXEL
    truth = []
    for c in np.column_stack([rng.uniform(lo[0] - 4, hi[0] + 4, 4000), rng.uniform(lo[1] + 1.5, hi[1] - 1.5, 4000),
                              rng.uniform(-2.5, 2.5, 4000)]):
        if not truth or np.min(np.linalg.norm(np.asarray(truth) - c, axis=1)) > 2.6:
            truth.append(c)
    truth = np.asarray(truth)
    angles = np.linspace(-60, 60, 25)
    for k, off in enumerate(area_offsets(CENTRES, SHAPE, PIXEL)):
        ny, nx = 2 * HALVES[k, 1] + 1, 2 * HALVES[k, 0] + 1
        s = tilt_series(truth - off, ["Ta"] * len(truth), angles, (ny, nx), PIXEL, seed=k)
        scipy.io.savemat(root / f"Projections_area{k + 1}.mat",
                         {"Proj_sub": np.transpose(s.tilts, (2, 1, 0)).astype(np.float32)})
    scipy.io.savemat(root / "crop.mat", {"CropCen": CENTRES.astype(np.uint16), "CropHalf": HALVES.astype(np.uint8)})
    np.savetxt(root / "angles.txt", angles)
    (root / "fast.toml").write_text(FAST)
    return root, truth


def _aet(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = aet(argv)
    return rc, out.getvalue(), err.getvalue()


def _args(root, files, out, **over):
    a = {"--crop-table": str(root / "crop.mat"), "--volume-shape": ",".join(map(str, SHAPE)),
         "--angles": str(root / "angles.txt"), "--pixel-size": str(PIXEL), "--species": "Ta", "--out": str(out),
         "--config": str(root / "fast.toml"), "--workers": "1", "--threads": "1"}
    a.update(over)
    return ["areas", *map(str, files), *[x for kv in a.items() for x in kv], "--quiet"]


def test_aet_areas_end_to_end(film, tmp_path):
    from aetcore.io.readers import read_atoms
    from aetcore.quality.scoring import match_atoms
    from aetcore.steps.stitch import area_offsets
    root, truth = film
    out = tmp_path / "stitched"
    rc, _, err = _aet(_args(root, [root / "Projections_area1.mat", root / "Projections_area2.mat"], out))
    assert rc == 0, err
    for k in (1, 2):  # each area's own aet run results folder
        assert (out / "areas" / f"area{k}" / "atoms.xyz").is_file()
        assert (out / "areas" / f"area{k}" / "report.html").is_file()
    assert (out / "areas" / "batch.csv").is_file()
    s = json.loads((out / "summary.json").read_text())
    assert [a["area"] for a in s["areas"]] == [1, 2] and s["failed_areas"] == []
    assert s["stitch"]["merged"] > 5                   # the overlap was traced by both areas
    assert s["atoms"] == sum(a["atoms_kept"] for a in s["areas"]) < sum(a["atoms_traced"] for a in s["areas"])
    atoms = read_atoms(out / "atoms.xyz")
    assert len(atoms) == s["atoms"] and set(atoms.get_array("area")) == {1, 2}
    pos = atoms.positions
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2) + 99 * np.eye(len(pos))
    assert d.min() > 1.5                                # no atom twice (the truth is >= 2.6 Å apart)
    # in the full-volume frame as it is (no translation): the true atoms 1 Å inside the covered region
    off = area_offsets(CENTRES, SHAPE, PIXEL)
    ext = (HALVES[:, :2] + 0.5) * PIXEL
    lo, hi = (off[:, :2] - ext).min(axis=0) + 1.0, (off[:, :2] + ext).max(axis=0) - 1.0
    inside = np.all((truth[:, :2] > lo) & (truth[:, :2] < hi), axis=1)
    m = match_atoms(truth[inside], None, pos, None, register=False)
    assert m.recall >= 0.9 and m.rmsd_pm < 30.0
    # the stitched volume covers dim1 3..59 (1-based): 57 x 25 x 41
    import mrcfile
    with mrcfile.open(out / "reconstruction.mrc") as f:
        assert f.data.shape == (41, 25, 57)
    assert s["stitch"]["volume_start_index"] == [2, 0, 0]
    html = (out / "report.html").read_text()
    assert 'id="sec-areas"' in html and "report/areas-map.png" in html and 'id="sec-run-atoms"' in html
    assert (out / "report" / "areas-map.png").stat().st_size > 10_000


@pytest.mark.parametrize("case, needle", [
    ("no-number", "no trailing area number"),
    ("not-a-row", "area 9 is not a row of --crop-table"),
    ("twice", "area 1 is given twice"),
    ("size", "images of 41 x 25 px (dim1 x dim2), but row 2 of --crop-table gives 2*CropHalf+1 = 31 x 25"),
    ("volume-shape", "--volume-shape: expected three positive integers"),
    ("outside", "--crop-table: row 2"),
    ("no-variable", "--crop-table:"),
])
def test_bad_arguments_name_the_file_or_argument_and_run_nothing(film, tmp_path, case, needle):
    root, _ = film
    a1 = root / "Projections_area1.mat"
    files, over = [a1], {}
    if case == "no-number":
        files = [tmp_path / "Projections.mat"]
        shutil.copy(a1, files[0])
    elif case == "not-a-row":
        files = [tmp_path / "Projections_area9.mat"]
        shutil.copy(a1, files[0])
    elif case == "twice":
        files = [a1, tmp_path / "area1.mat"]
        shutil.copy(a1, files[1])
    elif case == "size":
        files = [tmp_path / "Projections_area2.mat"]
        shutil.copy(a1, files[0])
        scipy.io.savemat(tmp_path / "crop.mat", {"CropCen": CENTRES.astype(np.uint16),
                                                 "CropHalf": np.array([[20, 12, 20], [15, 12, 20]], np.uint8)})
        over["--crop-table"] = str(tmp_path / "crop.mat")
    elif case == "volume-shape":
        over["--volume-shape"] = "61,25"
    elif case == "outside":
        files = [root / "Projections_area2.mat"]
        over["--volume-shape"] = "50,25,41"
    elif case == "no-variable":
        scipy.io.savemat(tmp_path / "crop.mat", {"CropCen": CENTRES.astype(np.uint16)})
        over["--crop-table"] = str(tmp_path / "crop.mat")
        needle = "CropHalf"
    out = tmp_path / "out"
    rc, _, err = _aet(_args(root, files, out, **over))
    assert rc == 2
    assert needle in err, err
    if case in ("no-number", "not-a-row", "size"):
        assert files[0].name in err
    assert not out.exists()
