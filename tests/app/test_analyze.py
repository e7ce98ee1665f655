"""aetcore.app.analyze.analyze_folder (the body of 'aet analyze') on a results folder."""
import csv
import json

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from aetcore.analysis import chemical_order, fit_lattice
from aetcore.app.analyze import analyze_folder
from aetcore.io.writers import write_xyz
from aetcore.model.simulate import FEPT_LATTICE_CONSTANT as A, fept_particle

EPS = np.diag([0.01, 0.0, 0.0])  # 1 % along x


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("result")
    p = fept_particle(13.0, domains=("L10z", "A1"), orientation="random", thermal=0.03, antisite=0.02, seed=4)
    x = p.positions @ (np.eye(3) + EPS).T
    write_xyz(d / "atoms.xyz", Atoms(symbols=list(p.species), positions=x))
    summary = analyze_folder(d, lattice_constant=A, planes=("z",))
    x = read(d / "atoms.xyz").positions  # what the folder holds (8 decimals)
    return d, p, x, summary


def test_outputs_written_and_summary_matches_file(folder):
    d, p, x, summary = folder
    out = d / "analysis"
    for name in ("atoms.csv", "grains.csv", "antiphase_domains.csv", "analysis.h5", "summary.json", "strain_z.png", "phase_z.png", "order_z.png", "rdf.png"):
        assert (out / name).stat().st_size > 0, name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["atoms"] == summary["atoms"] == len(p.species)
    assert on_disk["chemical_order"]["phase_fractions"] == pytest.approx(summary["chemical_order"]["phase_fractions"])
    assert sorted(on_disk["outputs"]) == sorted(summary["outputs"])
    html = (d / "report.html").read_text()
    assert "Analysis" in html and "analysis-strain_z.png" in html
    assert not list(out.glob(".*tmp*"))  # no temporary files left


def test_csv_and_h5_agree_with_direct_computation(folder):
    d, p, x, summary = folder
    with open(d / "analysis" / "atoms.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(p.species) and list(rows[0]) == summary["csv_columns"]
    np.testing.assert_allclose([float(r["x"]) for r in rows], x[:, 0], rtol=1e-5, atol=1e-4)  # %.6g
    assert [r["species"] for r in rows] == list(p.species)
    fit = fit_lattice(x, lattice_constant=A)
    co = chemical_order(fit.fcc_indices(), p.species)
    assert [r["phase"] for r in rows] == co.phase.tolist()
    assert sum(int(r["antisite"]) for r in rows) == summary["chemical_order"]["antisites"] == co.antisite.sum()
    with open(d / "analysis" / "grains.csv") as f:
        grains = list(csv.DictReader(f))
    table = summary["chemical_order"]["grains"]
    assert [int(g["atoms"]) for g in grains] == [g["atoms"] for g in table]
    assert [g["phase"] for g in grains] == [g["phase"] for g in table]
    assert [int(g["atoms"]) for g in grains] == [sum(r["grain"] == str(k) for r in rows) for k in range(len(grains))]
    with h5py.File(d / "analysis" / "analysis.h5", "r") as f:
        assert f["atoms/strain"].shape == (len(p.species), 3, 3)
        np.testing.assert_allclose(f["atoms/positions"][()], x)
        np.testing.assert_allclose(f["lattice/rotation"][()], fit.rotation, atol=1e-9)
        assert f["order/phase"][()].astype(str).tolist() == co.phase.tolist()
        assert f["strain_maps/z/strain"].shape[-2:] == (3, 3)
        assert f["grains/atoms"][()].sum() <= len(p.species)


def test_absolute_strain_and_phases_reported(folder):
    d, p, x, summary = folder
    st = summary["strain"]["interior"]
    # 1 % along x recovered on interior atoms within 0.1 % (3 pm thermal noise)
    assert st["mean"]["xx"] == pytest.approx(0.01, abs=1e-3)
    for c in ("yy", "zz", "xy", "xz", "yz"):
        assert abs(st["mean"][c]) < 1e-3
    co = summary["chemical_order"]
    found = co["phase_fractions"]
    true_a1 = np.mean(p.phase == "A1")
    assert found["A1"] == pytest.approx(true_a1, abs=0.1)
    # the L1_0 domain keeps its label up to the naming of the crystal axes
    assert max(found["L10x"], found["L10y"], found["L10z"]) == pytest.approx(1 - true_a1, abs=0.1)
    assert co["antisites"] > 0 and len(co["grains"]) >= 2


def test_without_report_and_bad_folder(tmp_path):
    p = fept_particle(9.0, domains=("L12",), seed=0)
    write_xyz(tmp_path / "atoms.xyz", Atoms(symbols=list(p.species), positions=p.positions))
    s = analyze_folder(tmp_path, report=False, planes=())
    assert not (tmp_path / "report.html").exists()
    assert (tmp_path / "analysis" / "rdf.png").exists()
    assert s["chemical_order"]["phase_fractions"]["L12"] == 1.0
    assert s["lattice"]["lattice_constant_A"] == pytest.approx(A, rel=1e-9)
    with pytest.raises(ValueError, match="atoms.xyz"):
        analyze_folder(tmp_path / "analysis")
    with pytest.raises(ValueError, match="planes"):
        analyze_folder(tmp_path, planes=("w",))


def test_duplicate_atom_is_left_out_of_the_chemistry(tmp_path):
    p = fept_particle(9.0, domains=("L10z",), antisite=0.03, seed=1)
    x = np.concatenate([p.positions, p.positions[:1] + [0.4, 0.0, 0.0]])  # a second atom on site 0
    species = np.concatenate([p.species, ["Pt" if p.species[0] == "Fe" else "Fe"]])
    write_xyz(tmp_path / "atoms.xyz", Atoms(symbols=list(species), positions=x))
    s = analyze_folder(tmp_path, report=False, planes=())
    assert s["chemical_order"]["duplicates_left_out"] == 1
    with open(tmp_path / "analysis" / "atoms.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["phase"] == "-" and rows[-1]["duplicate_site"] == "1" and rows[-1]["eta_L10z"] == "nan"
    # the other atoms get exactly what the model without the extra atom gives
    ref = chemical_order(fit_lattice(p.positions).fcc_indices(), p.species)
    assert [r["phase"] for r in rows[:-1]] == ref.phase.tolist()
    assert s["chemical_order"]["antisites"] == ref.antisite.sum()


def test_single_species_model_skips_the_chemistry(tmp_path):
    from aetcore.model.simulate import pt_particle
    x, species = pt_particle(9.0, orientation="random", thermal=0.03, seed=2)
    write_xyz(tmp_path / "atoms.xyz", Atoms(symbols=list(species), positions=x))
    s = analyze_folder(tmp_path, report=False)
    assert "chemical_order" not in s and "phase" not in s["csv_columns"]
    assert s["lattice"]["lattice_constant_A"] == pytest.approx(3.924, rel=2e-3)
    assert (tmp_path / "analysis" / "strain_z.png").exists()
    with pytest.raises(ValueError, match="chemical"):
        analyze_folder(tmp_path, chemical="on", report=False)
