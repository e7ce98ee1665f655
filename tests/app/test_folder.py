"""The results folder of `aet run` (aetcore.app.folder, aetcore.io.results): step files, results.h5
with provenance, resuming after an interrupted run, redoing one step with new settings, and export for DFT."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from ase.io import read

from aetcore.app import folder as workflow
from aetcore.io import results
from aetcore.app.cli import main
from aetcore.quality.scoring import match_atoms

FAST = {"align": {"matching": False}, "reconstruct": {"iterations": 30, "half_set_fsc": False},
        "refine": {"iterations": 10}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--out", str(d), "--size", "32", "--radius", "5", "--angles", "15", "--seed", "3"]) == 0
    return d


@pytest.fixture(scope="module")
def done(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "res"
    s = workflow.run(sim / "tilts.npy", sim / "angles.txt", 0.4, ("Fe", "Pt"), out, config=FAST, threads=2)
    return out, s


def test_results_h5_has_every_step_and_provenance(sim, done):
    import aetcore
    out, s = done
    with h5py.File(out / "results.h5", "r") as f:
        assert set(workflow.STEPS) | {"atoms", "provenance"} <= set(f)
        assert f["reconstruct/volume"].shape == (32, 32, 32)
        assert f["reconstruct/errors"].shape == (json.loads(f["reconstruct"].attrs["meta"])["iterations_run"],)
        assert f["align/tilts"].shape == (15, 32, 32) and f["align/shifts"].shape == (15, 2)
        assert f["classify/changes_per_round"].ndim == 1
        n = f["atoms/positions"].shape[0]
        assert n == s["atoms"] and f["atoms/precision"].shape == (n, 3)
        reliable = f["atoms/precision_reliable"][()]
        assert reliable.shape == (n,) and s["unreliable_precision_atoms"] == int(np.sum(~reliable.astype(bool)))
        prov = f["provenance"].attrs
        assert prov["aetcore_version"] == aetcore.__version__
        sha = json.loads(prov["input_sha256"])
        assert sha["tilts"] == hashlib.sha256((sim / "tilts.npy").read_bytes()).hexdigest()
        assert sha["angles"] == hashlib.sha256((sim / "angles.txt").read_bytes()).hexdigest()
        cfg = json.loads(prov["config"])
        assert cfg["reconstruct"]["iterations"] == 30 and cfg["trace"]["min_distance"] == 2.0
        assert set(json.loads(prov["timings_s"])) == set(workflow.STEPS)
    truth = read(sim / "truth.xyz")
    atoms = read(out / "atoms.xyz")
    m = match_atoms(truth.positions, truth.get_chemical_symbols(), atoms.positions, atoms.get_chemical_symbols())
    assert m.recall >= 0.95 and m.precision >= 0.95
    assert s["steps"] == list(workflow.STEPS) and s["resumed_steps"] == []
    # an isolated particle: its image borders are vacuum, so no extended-object handling (no slab)
    assert s["extended"]["extended"] is False and s["extended"]["how"] == "not detected"
    assert "slab_z" not in s["extended"]


def test_resume_keeps_finished_steps_and_redoes_changed_ones(sim, done, tmp_path):
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)  # the other tests share `done`
    before = read(out / "atoms.xyz")
    s = workflow.run(sim / "tilts.npy", sim / "angles.txt", 0.4, ("Fe", "Pt"), out, config=FAST, threads=2,
                     resume=True)
    assert s["resumed_steps"] == list(workflow.STEPS)
    np.testing.assert_array_equal(read(out / "atoms.xyz").positions, before.positions)
    # a new trace setting: the steps before it are kept, trace and after are recomputed
    cfg = {k: dict(v) for k, v in FAST.items()}
    cfg["trace"] = {"min_distance": 1.5}
    s = workflow.run(sim / "tilts.npy", sim / "angles.txt", 0.4, ("Fe", "Pt"), out, config=cfg, threads=2,
                     resume=True)
    assert s["resumed_steps"] == ["preprocess", "align", "reconstruct"]
    # a changed input file invalidates everything
    t = np.load(sim / "tilts.npy")
    np.save(tmp_path / "t.npy", t * 1.01)
    s = workflow.run(tmp_path / "t.npy", sim / "angles.txt", 0.4, ("Fe", "Pt"), out, config=cfg, threads=2,
                     resume=True)
    assert s["resumed_steps"] == []


def test_interrupted_run_leaves_whole_files_and_resumes(sim, tmp_path):
    out = tmp_path / "res"
    (tmp_path / "slow.toml").write_text("[align]\nmatching = false\n[reconstruct]\niterations = 400\n"
                                        "patience = 1000\n[refine]\niterations = 10\n")
    cmd = [sys.executable, "-m", "aetcore", "run", str(sim / "tilts.npy"), "--angles", str(sim / "angles.txt"),
           "--pixel-size", "0.4", "--species", "Fe,Pt", "--out", str(out), "--config", str(tmp_path / "slow.toml"),
           "--threads", "1", "--quiet"]
    # SIGINT's default action, even where the test runner inherited it ignored (a background job)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (out / "steps" / "align.h5").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - t0 < 120
        time.sleep(0.05)
    time.sleep(0.5)  # inside GENFIRE now (400 iterations)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    # nothing half written: no temporary files, every step file present is whole
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    present = [s for s in workflow.STEPS if (out / "steps" / f"{s}.h5").exists()]
    assert present[:2] == ["preprocess", "align"] and "refine" not in present
    for s in present:
        results.load_step(out / "steps" / f"{s}.h5")
    assert not (out / "atoms.xyz").exists()
    r = subprocess.run(cmd[:-1] + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed_steps"] == present
    assert (out / "atoms.xyz").exists() and s["atoms"] > 0


def test_one_step_with_new_settings(sim, done, tmp_path, capsys):
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    (tmp_path / "t.toml").write_text("[trace]\nmin_distance = 3.5\n")  # merged over the folder's settings
    assert main(["trace", "--out", str(out), "--config", str(tmp_path / "t.toml"), "--quiet"]) == 0
    steps = sorted(p.stem for p in (out / "steps").iterdir())
    assert steps == ["align", "preprocess", "reconstruct", "trace"]  # classify and refine are now stale
    assert not (out / "atoms.xyz").exists()
    with h5py.File(out / "steps" / "trace.h5", "r") as f:
        pos = f["positions"][()]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
    assert d.min() >= 3.5 - 1e-9  # the new minimum distance was applied
    assert main(["classify", "--out", str(out), "--quiet"]) == 0
    atoms = read(out / "atoms.xyz")
    assert len(atoms) <= len(pos) and np.isnan(atoms.get_array("precision")).all()  # not refined yet
    assert main(["evidence", "--out", str(out), "--quiet"]) == 0
    assert np.isfinite(read(out / "atoms.xyz").get_array("evidence")).all()
    assert main(["refine", "--out", str(out), "--quiet"]) == 0
    assert np.isfinite(read(out / "atoms.xyz").get_array("precision")).all()
    # a step whose predecessor is missing is refused with a message naming it
    (out / "steps" / "trace.h5").unlink()
    assert main(["classify", "--out", str(out)]) == 2
    assert "trace step must be run" in capsys.readouterr().err
    assert main(["align", "--out", str(tmp_path / "nowhere")]) == 2
    assert "not an aetcore results folder" in capsys.readouterr().err


def test_reconstruct_step_makes_the_half_sets_on_a_coarser_grid(done, tmp_path):
    # An object inside the field of view: each half from scratch with [reconstruct]
    # half_set_iterations (at most the full run's) on the half_set_oversampling grid (at most the
    # full run's), recorded with the step; the FSC reaches the step's resolution.
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    (tmp_path / "r.toml").write_text("[reconstruct]\nhalf_set_fsc = true\nhalf_set_iterations = 12\n"
                                     "half_set_oversampling = 2.5\n")
    assert main(["reconstruct", "--out", str(out), "--config", str(tmp_path / "r.toml"), "--quiet"]) == 0
    arrays, attrs = results.load_step(out / "steps" / "reconstruct.h5")
    assert attrs["half_set"] == {"iterations": 12, "oversampling": 2.5}
    assert np.isfinite(attrs["resolution"]) and arrays["fsc_corr"].ndim == 1
    (tmp_path / "r.toml").write_text("[reconstruct]\nhalf_set_fsc = true\niterations = 8\noversampling = 1.5\n")
    assert main(["reconstruct", "--out", str(out), "--config", str(tmp_path / "r.toml"), "--quiet"]) == 0
    assert results.load_step(out / "steps" / "reconstruct.h5")[1]["half_set"] == {"iterations": 8,
                                                                                "oversampling": 1.5}


def test_export_poscar_and_cif(done, tmp_path):
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    assert main(["export", "--out", str(out), "--vacuum", "8", "--quiet"]) == 0
    src = read(out / "atoms.xyz")
    for name, fmt in (("atoms.vasp", "vasp"), ("atoms.cif", "cif")):
        a = read(out / name, format=fmt)
        assert sorted(a.get_chemical_symbols()) == sorted(src.get_chemical_symbols())
        # same particle, shifted into the cell: the sorted pair distances agree
        def pd(x):
            return np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1).ravel())
        np.testing.assert_allclose(pd(a.positions), pd(src.positions), atol=1e-4)
        lo = a.positions.min(axis=0)
        np.testing.assert_allclose(lo, 8.0, atol=1e-4)
        np.testing.assert_allclose(np.diag(a.cell), a.positions.max(axis=0) + 8.0, atol=1e-4)
    with pytest.raises(ValueError, match="no atoms.xyz"):
        workflow.export(tmp_path)


def test_analyze_and_track_write_into_the_folder_and_report(done, tmp_path):
    import shutil
    from scipy.spatial.transform import Rotation
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    assert main(["analyze", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "analysis" / "summary.json").read_text())
    assert s["atoms"] == len(read(out / "atoms.xyz"))
    assert 3.7 < s["lattice"]["lattice_constant_A"] < 4.0  # simulated FePt: 3.86 Å
    html = (out / "report.html").read_text()
    assert "Analysis" in html and "Reconstruction" in html.replace("reconstruction", "Reconstruction")
    # a second time point: the same model turned by 5 degrees and moved
    a = read(out / "atoms.xyz")
    R = Rotation.from_euler("z", 5, degrees=True).as_matrix()
    b = a.copy()
    b.positions = a.positions @ R.T + [0.3, -0.2, 0.1]
    from aetcore.io.writers import write_xyz
    write_xyz(tmp_path / "t1.xyz", b)
    assert main(["track", str(out / "atoms.xyz"), str(tmp_path / "t1.xyz"), "--out", str(tmp_path / "trk"),
                 "--quiet"]) == 0
    t = json.loads((tmp_path / "trk" / "track" / "summary.json").read_text())
    assert "Tracking" in (tmp_path / "trk" / "report.html").read_text()
    assert t["registration"][1]["rotation_deg"] == pytest.approx(5.0, abs=0.01)
    assert t["correspondence"][0]["pairs"] == len(a) and t["correspondence"][0]["species_changed"] == 0


def test_refine_step_with_angle_refinement_stores_the_angles(done, tmp_path):
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    (tmp_path / "a.toml").write_text("[refine]\nrefine_angles = true\nangle_rounds = 1\n")
    assert main(["refine", "--out", str(out), "--config", str(tmp_path / "a.toml"), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["tilt_angles_refined_by_refine"] is True
    with h5py.File(out / "results.h5", "r") as f:
        refined, nominal = f["refine/angles"][()], f["align/euler"][()]
    assert refined.shape == nominal.shape == (15, 3)
    assert 0 < np.abs(refined[:, 1] - nominal[:, 1]).max() < 2.0  # moved, within the range
    assert abs(np.mean(refined[:, 1] - nominal[:, 1])) < 1e-9  # the common offset is a gauge


def test_refine_step_with_holdout_reports_r1_holdout(done, tmp_path):
    # [refine] holdout_folds: the k-fold validation over images goes to summary.json, results.h5,
    # atoms.xyz's info and the report, next to the R1 of the fit
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    s0 = json.loads((out / "summary.json").read_text())
    assert s0["holdout"]["folds"] == 3 and s0["r1_holdout"] > 0   # on by default, 3 folds
    (tmp_path / "h.toml").write_text("[refine]\niterations = 10\nholdout_folds = 5\n")
    assert main(["refine", "--out", str(out), "--config", str(tmp_path / "h.toml"), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    h = s["holdout"]
    assert h["folds"] == 5 and len(h["r1_holdout_folds"]) == 5
    assert s["r1_holdout"] == pytest.approx(np.mean(h["r1_holdout_folds"]))
    assert 0 < h["r1_fit"] < 1 and 0 < s["r1_holdout"] < 1
    # every fold sees 2/3 of the images with the whole fit's settings: its fit R1 is the whole fit's
    assert h["r1_fit"] == pytest.approx(s["r1_after"], rel=0.25)
    with h5py.File(out / "results.h5", "r") as f:
        meta = json.loads(f["refine"].attrs["meta"])
    assert meta["r1_holdout"] == s["r1_holdout"]
    assert read(out / "atoms.xyz").info["r1_holdout"] == pytest.approx(s["r1_holdout"])
    html = (out / "report.html").read_text()
    assert "R1 on held-out images (5-fold validation)" in html and "R1 of the 5-fold fits" in html
    (tmp_path / "off.toml").write_text("[refine]\niterations = 10\nholdout_folds = 0\n")
    assert main(["refine", "--out", str(out), "--config", str(tmp_path / "off.toml"), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["r1_holdout"] is None and s["holdout"] is None and "held-out" not in (out / "report.html").read_text()
    (tmp_path / "bad.toml").write_text("[refine]\nholdout_folds = 1\n")
    with pytest.raises(ValueError, match="refine.holdout_folds: expected 0"):   # refused before any work
        workflow.run_step("refine", out, config=str(tmp_path / "bad.toml"))


def test_step_config_is_merged_over_the_folders_and_checked(done, tmp_path, capsys):
    import shutil
    out = tmp_path / "res"
    shutil.copytree(done[0], out)
    (tmp_path / "bad.toml").write_text("[trace]\nmin_distanse = 3\n")
    assert main(["trace", "--out", str(out), "--config", str(tmp_path / "bad.toml")]) == 2
    assert "trace.min_distanse" in capsys.readouterr().err
    (tmp_path / "c.toml").write_text("[classify]\nmethod = \"gmm\"\n")
    assert main(["classify", "--out", str(out), "--config", str(tmp_path / "c.toml"), "--quiet"]) == 0
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["classify"]["method"] == "gmm"
    assert cfg["reconstruct"]["iterations"] == 30  # the folder's own setting, kept
    assert sorted(p.stem for p in (out / "steps").iterdir()) == ["align", "classify", "preprocess",
                                                                 "reconstruct", "trace"]


def test_single_frame_series_has_its_detector_offset_removed_by_default(sim, tmp_path):
    # Every detector adds an offset; on a raw FePt series leaving it in cost 11 points of recall and
    # 32 of precision, so the default pre-processes a single-frame series too (background removal).
    tilts = np.load(sim / "tilts.npy").astype(np.float32)
    raw = tilts + np.float32(0.25 * tilts.max())
    np.save(tmp_path / "raw.npy", raw)
    out = tmp_path / "res"
    workflow.run_step("preprocess", out, tilts_path=tmp_path / "raw.npy", angles_path=sim / "angles.txt",
                      pixel_size=0.4, species=("Fe", "Pt"))
    arrays, attrs = results.load_step(results._step_path(out, "preprocess"))
    assert "background" in " ".join(attrs["applied"])
    # the vacuum border of the simulated particle: was 0.25 max, is near zero once the offset is gone
    border = np.concatenate([arrays["tilts"][:, :3].ravel(), arrays["tilts"][:, -3:].ravel()])
    assert abs(np.median(border)) < 0.02 * arrays["tilts"].max()
    # `always = false` keeps the old behaviour: the offset stays
    out2 = tmp_path / "res2"
    workflow.run_step("preprocess", out2, tilts_path=tmp_path / "raw.npy", angles_path=sim / "angles.txt",
                      pixel_size=0.4, species=("Fe", "Pt"), config={"preprocess": {"always": False}})
    arrays2, attrs2 = results.load_step(results._step_path(out2, "preprocess"))
    assert attrs2["applied"] == []
    np.testing.assert_array_equal(arrays2["tilts"], raw)


def test_report_import_error_fails_loudly(monkeypatch):
    # a broken report module must stop the run, not silently leave the folder without report.html
    monkeypatch.setitem(sys.modules, "aetcore.report.run", None)  # any import of it raises ImportError
    with pytest.raises(ImportError):
        workflow._report(None, {}, None, {})
