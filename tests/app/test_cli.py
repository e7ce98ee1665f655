"""The `aet` command line and its TOML configuration: `aet simulate` then `aet run` end to end on a
tiny case, readable outputs, `aet config --defaults` round trip, and bad arguments refused."""
import json
import subprocess
import sys

import numpy as np
import pytest

from aetcore.app import config as aconfig
from aetcore.app.cli import main

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

FAST = """
[align]
enabled = false
[reconstruct]
iterations = 30
[refine]
iterations = 10
"""


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------------------------ config
def test_defaults_toml_parses_back_to_defaults(capsys):
    rc, out, _ = _run(["config", "--defaults"], capsys)
    assert rc == 0
    parsed = tomllib.loads(out)
    assert parsed == aconfig.DEFAULTS
    assert set(parsed) == {"preprocess", "align", "reconstruct", "trace", "classify", "evidence", "refine"}
    assert out == aconfig.default_config_toml()
    assert all(line.count("#") >= 1 for line in out.splitlines() if "=" in line)  # every key documented


def test_config_merges_and_rejects(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[reconstruct]\niterations = 7\noversampling = 2\n[trace]\nthreshold = 0.5\n")
    cfg = aconfig.load_config(f)
    assert cfg["reconstruct"]["iterations"] == 7
    assert cfg["reconstruct"]["oversampling"] == 2.0 and isinstance(cfg["reconstruct"]["oversampling"], float)
    assert cfg["reconstruct"]["momentum"] == aconfig.DEFAULTS["reconstruct"]["momentum"]
    assert aconfig.step_options(cfg, "trace")["threshold"] == 0.5
    assert aconfig.step_options(aconfig.default_config(), "trace")["threshold"] is None
    f.write_text("[preprocess]\nextended = true\n")
    assert aconfig.load_config(f)["preprocess"]["extended"] is True
    assert aconfig.DEFAULTS["preprocess"]["extended"] == "auto"
    for text, match in [("[reconstruct]\niterationz = 3\n", "reconstruct.iterationz"),
                        ("[recon]\niterations = 3\n", "'recon'"),
                        ("[reconstruct]\niterations = 2.5\n", "reconstruct.iterations.*integer"),
                        ("[align]\nenabled = 1\n", "align.enabled.*true or false"),
                        ("[preprocess]\nbackground = 'sky'\n", "preprocess.background.*plane"),
                        ("[preprocess]\nextended = 'yes'\n", "preprocess.extended.*auto"),
                        ("[reconstruct\n", "not valid TOML")]:
        f.write_text(text)
        with pytest.raises(ValueError, match=match):
            aconfig.load_config(f)
    with pytest.raises(ValueError, match="no such configuration file"):
        aconfig.load_config(tmp_path / "missing.toml")


def test_config_check_command(tmp_path, capsys):
    f = tmp_path / "c.toml"
    f.write_text("[refine]\nenabled = false\n")
    assert _run(["config", "--check", str(f)], capsys)[0] == 0
    f.write_text("[refine]\nenable = false\n")
    rc, _, err = _run(["config", "--check", str(f)], capsys)
    assert rc == 2 and "refine.enable" in err


# --------------------------------------------------------------------------------- arguments
def test_help_on_every_subcommand():
    for sub in ([], ["run"], ["simulate"], ["demo"], ["config"], ["preprocess"], ["align"], ["reconstruct"],
                ["trace"], ["classify"], ["refine"], ["export"], ["analyze"], ["track"], ["batch"]):
        r = subprocess.run([sys.executable, "-m", "aetcore", *sub, "--help"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "usage:" in r.stdout


@pytest.mark.parametrize("argv, match", [
    ([], "COMMAND"),
    (["run", "t.npy", "--angles", "a.txt", "--pixel-size", "-1", "--species", "Fe", "--out", "o"], "--pixel-size"),
    (["run", "t.npy", "--angles", "a.txt", "--pixel-size", "0.4", "--species", "Fe,Xx", "--out", "o"], "Xx"),
    (["run", "t.npy", "--angles", "a.txt", "--pixel-size", "0.4", "--species", "Fe", "--out", "o",
      "--frames", "0"], "--frames"),
    (["simulate", "--out", "o", "--size", "abc"], "--size"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_arguments_exit_nonzero(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code != 0
    assert match in capsys.readouterr().err


def test_bad_input_files_named(tmp_path, capsys):
    np.save(tmp_path / "t.npy", np.ones((3, 16, 16), np.float32))
    (tmp_path / "a.txt").write_text("0\n10\n")
    base = ["run", str(tmp_path / "t.npy"), "--angles", str(tmp_path / "a.txt"), "--pixel-size", "0.4",
            "--species", "Fe,Pt", "--out", str(tmp_path / "out")]
    rc, _, err = _run(base, capsys)
    assert rc == 2 and "a.txt: 2 angles for 3 images" in err
    rc, _, err = _run(base[:2] + base[4:], capsys)  # no --angles: a .npy file records none
    assert rc == 2 and "t.npy" in err and "angles" in err
    rc, _, err = _run(base[:1] + [str(tmp_path / "missing.npy")] + base[2:], capsys)
    assert rc == 2 and "missing.npy: no such file" in err
    rc, _, err = _run(base + ["--frames", "2"], capsys)
    assert rc == 2 and "not a multiple of --frames 2" in err
    (tmp_path / "c.toml").write_text("[trace]\nbogus = 1\n")
    rc, _, err = _run(base + ["--config", str(tmp_path / "c.toml")], capsys)
    assert rc == 2 and "trace.bogus" in err
    assert not (tmp_path / "out" / "atoms.xyz").exists()


# -------------------------------------------------------------------------------- end to end
def test_simulate_then_run_end_to_end(tmp_path, capsys):
    from ase.io import read
    import mrcfile
    sim = tmp_path / "sim"
    rc, out, _ = _run(["simulate", "--out", str(sim), "--size", "48", "--angles", "15", "--seed", "1"], capsys)
    assert rc == 0 and "aet run" in out
    truth = read(sim / "truth.xyz")
    assert set(truth.get_chemical_symbols()) == {"Fe", "Pt"}
    (tmp_path / "fast.toml").write_text(FAST)
    res = tmp_path / "res"
    # through the installed entry point (`python -m aetcore`), as a user would
    r = subprocess.run([sys.executable, "-m", "aetcore", "run", str(sim / "tilts.npy"), "--angles",
                        str(sim / "angles.txt"), "--pixel-size", "0.4", "--species", "Fe,Pt", "--out",
                        str(res), "--config", str(tmp_path / "fast.toml"), "--threads", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "atoms" in r.stdout
    assert "memory estimate" in r.stderr and "available" in r.stderr  # printed before the work
    atoms = read(res / "atoms.xyz")
    assert set(atoms.get_chemical_symbols()) <= {"Fe", "Pt"}
    assert abs(len(atoms) - len(truth)) <= 0.1 * len(truth)
    assert atoms.get_array("intensity").shape == (len(atoms),)
    with mrcfile.open(res / "reconstruction.mrc") as m:
        assert m.data.shape == (48, 48, 48)
        assert m.voxel_size.x == pytest.approx(0.4, rel=1e-5)
    s = json.loads((res / "summary.json").read_text())
    assert sum(s["counts"].values()) == len(atoms) == s["atoms"]
    assert s["r1_after"] < s["r1_before"]
    assert {"preprocess", "align", "reconstruct", "trace", "classify", "evidence", "refine",
            "total"} <= set(s["timings_s"])
    assert json.loads((res / "run.json").read_text())["config"]["reconstruct"]["iterations"] == 30
    assert s["alignment"]["enabled"] is False
    assert s["memory_estimate"]["peak_step"] in s["memory_estimate"]["steps_bytes"]
    assert s["resolution_A"] is not None and 0.8 <= s["resolution_A"] <= s["resolution_fsc05_A"] < 5  # Nyquist 0.8 Å
    # the scores against the truth are sensible
    from aetcore.quality.scoring import match_atoms
    m = match_atoms(truth.positions, truth.get_chemical_symbols(), atoms.positions, atoms.get_chemical_symbols())
    assert m.recall > 0.9 and m.precision > 0.9
    assert sorted(p.name for p in res.iterdir()) == ["atoms.xyz", "reconstruction.mrc", "report", "report.html",
                                                     "results.h5", "run.json", "steps", "summary.json"]
    assert not list(res.rglob("*.tmp*"))


def test_run_frames_tiff_with_alignment(tmp_path, capsys):
    """Several frames per angle in a multi-page TIFF, misaligned: preprocessing and alignment run."""
    sim = tmp_path / "sim"
    assert _run(["simulate", "--out", str(sim), "--size", "48", "--angles", "11", "--frames", "3",
                 "--shift", "2", "--format", "tif"], capsys)[0] == 0
    (tmp_path / "c.toml").write_text("[align]\niterations = 2\nrecon_iterations = 10\n"
                                     "[reconstruct]\niterations = 20\nhalf_set_fsc = false\n"
                                     "[refine]\nenabled = false\n")
    rc, out, err = _run(["run", str(sim / "tilts.tif"), "--angles", str(sim / "angles.txt"), "--pixel-size",
                         "0.4", "--species", "Fe,Pt", "--frames", "3", "--out", str(tmp_path / "r"),
                         "--config", str(tmp_path / "c.toml"), "--quiet"], capsys)
    assert rc == 0, err
    assert out == ""
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {"preprocess", "align"} <= set(s["timings_s"])
    import h5py
    with h5py.File(tmp_path / "r" / "results.h5", "r") as f:
        assert f["align/shifts"].shape == (11, 2) and f["preprocess/frame_shifts"].shape == (11, 3, 2)
    assert s["alignment"]["enabled"] is True
    assert s["r1_before"] is None and s["atoms"] > 50


def test_demo_prints_scores_and_writes_report(tmp_path, capsys):
    rc, out, _ = _run(["demo", "--size", "32", "--angles", "11", "--out", str(tmp_path / "d")], capsys)
    assert rc == 0
    for word in ("recall", "precision", "RMSD", "pm", "species accuracy"):
        assert word in out
    assert (tmp_path / "d" / "demo.txt").read_text() == out


def test_run_refuses_before_work_when_memory_is_short(tmp_path, capsys, monkeypatch):
    """A 288^2 x 68 series (the FePt 2017 size) under a 2 GiB limit: `aet run` prints its estimate's
    verdict and the option to lower, exits 1 and writes no step."""
    from aetcore.app.estimate import estimate_run
    t = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(68, 288, 288))
    del t
    np.savetxt(tmp_path / "angles.txt", np.linspace(-70, 70, 68))
    need = estimate_run((68, 288, 288), aconfig.default_config(), threads=2).peak
    assert need > 2 * 2**30
    monkeypatch.setenv("AETCORE_MEMORY_LIMIT", "2G")
    rc, _, err = _run(["run", str(tmp_path / "big.npy"), "--angles", str(tmp_path / "angles.txt"),
                       "--pixel-size", "0.35", "--species", "Fe,Pt", "--out", str(tmp_path / "res"),
                       "--threads", "2", "--quiet"], capsys)
    assert rc == 1
    assert "not enough memory" in err and "reconstruct" in err and "oversampling = 2" in err
    assert not (tmp_path / "res" / "steps").exists()
