"""aet compare (issue 13): one atomic model scored against another, from .xyz, .mat and .csv files."""
import json

import numpy as np
import pytest
import scipy.io

from aetcore.app.cli import main
from aetcore.io.models import read_model
from aetcore.quality.compare import compare_models, parse_region


def _lattice(n=8, a=2.5):
    g = np.arange(n) * a
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) - (n - 1) * a / 2


@pytest.fixture
def models(rng):
    """A: a lattice of Fe and Pt; B: A without 40 atoms, with 20 spurious atoms, 5 species swapped,
    0.1 Å noise per axis and a shift of (0.4, -0.3, 0.2) Å."""
    a = _lattice()
    sa = np.where(rng.random(len(a)) < 0.5, "Fe", "Pt")
    keep = np.sort(rng.choice(len(a), len(a) - 40, replace=False))
    noise = rng.normal(0, 0.1, (len(keep), 3))
    b = a[keep] + noise
    sb = sa[keep].copy()
    swap = rng.choice(len(keep), 5, replace=False)
    sb[swap] = np.where(sb[swap] == "Fe", "Pt", "Fe")
    extra = rng.uniform(-8.5, 8.5, (20, 3)) + 1.25  # between lattice sites, mostly
    extra = extra[np.min(np.linalg.norm(extra[:, None] - a[None], axis=2), axis=1) > 1.2]
    b = np.vstack([b, extra]) + [0.4, -0.3, 0.2]
    sb = np.concatenate([sb, ["Fe"] * len(extra)])
    return a, sa, b, sb, keep, noise, swap, len(extra)


def test_scores_against_the_construction(models):
    a, sa, b, sb, keep, noise, swap, n_extra = models
    c = compare_models(a, sa, b, sb, max_distance=1.0)
    assert c.n_pairs == len(keep)
    assert c.recall == pytest.approx(len(keep) / len(a))
    assert c.precision == pytest.approx(len(keep) / (len(keep) + n_extra))
    # translation: the shift up to the mean of the noise; RMSD: of the noise about its mean
    np.testing.assert_allclose(c.translation, -np.array([0.4, -0.3, 0.2]) - noise.mean(0), atol=1e-3)
    expected = 100 * np.sqrt(((noise - noise.mean(0)) ** 2).mean(0))
    np.testing.assert_allclose(c.rmsd_axes_pm, expected, rtol=1e-3)
    assert c.labels == ("Fe", "Pt") and c.confusion.sum() == len(keep)
    assert c.confusion[0, 1] + c.confusion[1, 0] == len(swap)


def test_region_counts_only_atoms_inside(models):
    a, sa, b, sb, keep, noise, _, _ = models
    region = parse_region("-5:5,:,0:")
    c = compare_models(a, sa, b, sb, region=region)
    inside = (np.abs(a[:, 0]) <= 5) & (a[:, 2] >= 0)
    assert c.n_a == inside.sum()
    assert c.n_pairs == np.isin(np.flatnonzero(inside), keep).sum()
    assert c.recall == pytest.approx(c.n_pairs / inside.sum())
    assert c.n_b < len(b)
    with pytest.raises(ValueError, match="--region"):
        parse_region("1:0,:,:")
    with pytest.raises(ValueError, match="--region"):
        parse_region("1:2,:")


def test_cli_reads_xyz_mat_and_csv(models, tmp_path, capsys):
    from ase import Atoms
    from ase.io import write
    a, sa, b, sb, keep, _, _, n_extra = models
    write(tmp_path / "a.xyz", Atoms(symbols=list(sa), positions=a))
    scipy.io.savemat(tmp_path / "b.mat", {"model": b.T})  # the AET codes' (3, n), no species
    (tmp_path / "b.csv").write_text("x,y,z,species\n" + "".join(f"{p[0]},{p[1]},{p[2]},{s}\n" for p, s in zip(b, sb)))
    pos, species = read_model(tmp_path / "b.mat")
    np.testing.assert_allclose(pos, b) and species is None
    for name, extra in (("b.mat", ["--species-b", "Fe"]), ("b.csv", [])):
        out = tmp_path / f"{name}.json"
        assert main(["compare", str(tmp_path / "a.xyz"), str(tmp_path / name), "--json", str(out)] + extra) == 0
        d = json.loads(out.read_text())
        assert d["n_pairs"] == len(keep) and d["recall"] == pytest.approx(len(keep) / len(a))
        assert d["precision"] == pytest.approx(len(keep) / (len(keep) + n_extra))
    assert "recall" in capsys.readouterr().out
    # --shift-b moves B by a known offset; without registration the pairs are lost, with it found
    assert main(["compare", str(tmp_path / "a.xyz"), str(tmp_path / "b.csv"), "--no-register",
                 "--shift-b=-0.4,0.3,-0.2", "--json", str(tmp_path / "s.json"), "-q"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["n_pairs"] == len(keep)
    # errors name the argument or file
    assert main(["compare", str(tmp_path / "a.xyz"), str(tmp_path / "missing.xyz")]) == 2
    assert "missing.xyz" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a.xyz"), str(tmp_path / "b.csv"), "--shift-b", "1,2"]) == 2
    assert "--shift-b" in capsys.readouterr().err
