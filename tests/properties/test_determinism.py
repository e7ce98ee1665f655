"""Determinism: the same inputs, seed and thread count give byte-identical outputs, in memory and in
the files ``aet simulate`` and ``aet run`` write (summary.json apart from its timings)."""
import json

import numpy as np
import pytest

import aetcore
from aetcore.app import cli
from aetcore.steps.classify import classify
from aetcore.model.simulate import angles_range, fept_particle, tilt_series


def same_bytes(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def case():
    p = fept_particle(5.0, orientation="random", antisite=0.05, seed=11)
    angles = angles_range(-60, 60, 9)
    s = tilt_series(p.positions, p.species, angles, (24, 24), 0.5, dose=2e4, seed=11, threads=2)
    return p, angles, s.tilts


def twice(fn):
    return fn(), fn()


@pytest.mark.parametrize("threads", [1, 2])
def test_simulation(threads):
    def make():
        p = fept_particle(5.0, orientation="random", antisite=0.05, thermal=0.05, seed=5)
        s = tilt_series(p.positions, p.species, angles_range(-60, 60, 5, uneven=0.3, seed=5), (20, 20), 0.5,
                        dose=1e4, read_noise=0.01, shifts="random", n_frames=2, drift=0.3, seed=5, threads=threads)
        return p.positions, p.species, s.tilts, s.shifts
    a, b = twice(make)
    for x, y in zip(a, b):
        same_bytes(x, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_genfire(case, threads):
    _, angles, tilts = case
    a, b = twice(lambda: aetcore.genfire(tilts, angles, pixel_size=0.5, oversampling=2, iterations=8, seed=3,
                                         threads=threads, progress=False))
    same_bytes(a.volume, b.volume)
    same_bytes(a.errors, b.errors)
    same_bytes(a.rfree, b.rfree)


@pytest.mark.parametrize("threads", [1, 2])
def test_trace_classify_refine(case, threads):
    p, angles, tilts = case
    vol = aetcore.genfire(tilts, angles, pixel_size=0.5, oversampling=2, iterations=8, seed=3, threads=threads,
                          progress=False).volume

    def chain():
        tr = aetcore.trace_atoms(vol, 0.5, fit="gaussian", threads=threads)
        cl = classify(vol, tr.positions, ("Fe", "Pt"), pixel_size=0.5, seed=4)
        keep = cl.labels >= 0
        species = np.array(["Fe", "Pt"])[cl.labels[keep]]
        rf = aetcore.refine_atoms(tr.positions[keep], species, tilts, angles, 0.5, iterations=5, threads=threads)
        return tr.positions, tr.status, cl.labels, rf.positions, rf.model.heights, rf.model.b_factors, rf.precision

    a, b = twice(chain)
    for x, y in zip(a, b):
        same_bytes(x, y)


def _cli(argv):
    assert cli.main(argv) == 0


def test_aet_simulate_and_run_files(tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text("[reconstruct]\niterations = 10\n[align]\nenabled = false\n[refine]\niterations = 5\n")
    outputs = []
    for k in range(2):
        d = tmp_path / f"try{k}"
        _cli(["simulate", "--out", str(d / "sim"), "--size", "24", "--angles", "9", "--radius", "4",
              "--pixel-size", "0.5", "--seed", "7", "--threads", "2"])
        _cli(["run", str(d / "sim" / "tilts.npy"), "--angles", str(d / "sim" / "angles.txt"), "--pixel-size", "0.5",
              "--species", "Fe,Pt", "--out", str(d / "res"), "--config", str(cfg), "--threads", "2", "--seed", "1",
              "--quiet"])
        outputs.append(d)
    a, b = outputs
    for rel in ("sim/tilts.npy", "sim/angles.txt", "sim/truth.xyz", "res/atoms.xyz"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # write_mrc labels the header without mrcfile's time stamp: the whole file is identical
    assert (a / "res/reconstruction.mrc").read_bytes() == (b / "res/reconstruction.mrc").read_bytes()

    def without_timings(o):
        if isinstance(o, dict):
            return {k: without_timings(v) for k, v in o.items() if "timing" not in k and k not in ("elapsed_s",)}
        if isinstance(o, list):
            return [without_timings(v) for v in o]
        return o

    sa = json.loads((a / "res/summary.json").read_text())
    sb = json.loads((b / "res/summary.json").read_text())
    sa, sb = without_timings(sa), without_timings(sb)
    # paths differ between the two runs by construction
    for s, d in ((sa, a), (sb, b)):
        text = json.dumps(s).replace(str(d), "<out>")
        s.clear()
        s.update(json.loads(text))
    assert sa == sb


def test_mrc_output_is_byte_identical(tmp_path):
    import time
    from aetcore.io.writers import write_mrc
    vol = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    write_mrc(tmp_path / "a.mrc", vol, 0.5)
    time.sleep(1.1)
    write_mrc(tmp_path / "b.mrc", vol, 0.5)
    assert (tmp_path / "a.mrc").read_bytes() == (tmp_path / "b.mrc").read_bytes()
