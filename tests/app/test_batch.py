"""aet batch: a manifest of datasets run with dask.distributed, failures reported and retried."""
import contextlib
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from aetcore.app.batch import ManifestError, batch, load_manifest
from aetcore.app.cli import main as aet

# a quick configuration: ~2 s per 32 px dataset on one core
FAST = """
[defaults.config]
reconstruct.iterations = 30
reconstruct.half_set_fsc = false
refine.enabled = false
align.matching = false
"""


def _parser():
    from aetcore.app.cli import build_parser  # aet batch is declared with every other command
    return build_parser()


def _aet_batch(argv):
    """Run `aet batch ARGV` through the aet parser and handler; (exit status, stdout, stderr)."""
    args = _parser().parse_args(["batch", *argv])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = args.func(args)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two small simulated FePt datasets and a corrupt one (a truncated .npy)."""
    root = tmp_path_factory.mktemp("batch")
    with contextlib.redirect_stdout(io.StringIO()):
        for name, seed in (("p1", 1), ("p2", 2)):
            assert aet(["simulate", "--out", str(root / name), "--size", "32", "--radius", "5",
                        "--angles", "21", "--seed", str(seed)]) == 0
    (root / "bad").mkdir()
    good = (root / "p1" / "tilts.npy").read_bytes()
    (root / "bad" / "tilts.npy").write_bytes(good[: len(good) // 3])
    (root / "bad" / "angles.txt").write_text((root / "p1" / "angles.txt").read_text())
    return root


def _manifest(root, text, name="manifest.toml"):
    p = root / name
    p.write_text(text)
    return p


GOOD_AND_BAD = """
[defaults]
out = "results"
pixel_size = 0.4
species = ["Fe", "Pt"]
""" + FAST + """
[[dataset]]
name = "p1"
tilts = "p1/tilts.npy"
angles = "p1/angles.txt"

[[dataset]]
name = "bad"
tilts = "bad/tilts.npy"
angles = "bad/angles.txt"

[[dataset]]
name = "p2"
tilts = "p2/tilts.npy"
angles = "p2/angles.txt"
"""


def test_aet_batch_two_ok_one_corrupt_on_a_local_cluster(data):
    from ase.io import read
    from aetcore.app.config import load_config
    from aetcore.quality.scoring import match_atoms

    m = _manifest(data, GOOD_AND_BAD)
    t0 = time.perf_counter()
    rc, out, err = _aet_batch([str(m), "--workers", "2", "--threads-per-worker", "1", "--quiet"])
    wall = time.perf_counter() - t0
    assert rc == 1, err  # some dataset failed
    assert wall < 90, f"the batch took {wall:.1f} s"  # two ~2 s datasets: no hang, no serial retries
    res = data / "results"
    with open(res / "batch.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["p1", "bad", "p2"]  # manifest order, one row each
    report = json.loads((res / "batch.json").read_text())
    assert report["scheduler"].startswith("LocalCluster(2 workers")
    assert report["threads_per_worker"] == 1
    js = {d["name"]: d for d in report["datasets"]}

    for name in ("p1", "p2"):
        r = rows[name]
        assert r["status"] == "ok" and r["attempts"] == "1" and r["error"] == ""
        d = Path(r["out"])
        assert d == res / name
        for f in ("atoms.xyz", "summary.json", "reconstruction.mrc", "config.toml"):
            assert (d / f).is_file(), f"{d / f} missing"
        s = json.loads((d / "summary.json").read_text())
        assert r["r1_holdout"] == ("" if s["r1_holdout"] is None else str(s["r1_holdout"]))  # refine off: empty
        cfg = load_config(d / "config.toml")  # the complete configuration the dataset ran with
        assert cfg["reconstruct"]["iterations"] == 30 and cfg["refine"]["enabled"] is False
        h5 = d / "results.h5"
        assert r["results_h5"] == (str(h5) if h5.is_file() else "")
        truth = read(data / name / "truth.xyz")
        traced = read(d / "atoms.xyz")
        assert int(r["atoms"]) == len(traced) == js[name]["atoms"]
        assert int(r["count_Fe"]) + int(r["count_Pt"]) == len(traced)
        assert abs(len(traced) - len(truth)) <= max(3, 0.15 * len(truth))
        score = match_atoms(truth.positions, truth.get_chemical_symbols(), traced.positions,
                            traced.get_chemical_symbols())
        assert score.recall >= 0.85, score.summary()
        assert float(r["time_s"]) > 0

    bad = rows["bad"]
    assert bad["status"] == "failed" and bad["attempts"] == "2"  # retried exactly once
    assert bad["error"].startswith("ValueError: ")
    assert str(data / "bad" / "tilts.npy") in bad["error"]  # the error names the corrupt file
    assert "Traceback" not in bad["error"] and len(bad["error"]) < 700
    errs = js["bad"]["errors"]
    assert [e["attempt"] for e in errs] == [1, 2]
    assert all(str(data / "bad" / "tilts.npy") in e["error"] for e in errs)
    assert not (res / "bad" / "summary.json").exists()


def test_python_batch_retries_a_transient_failure_and_reports(data, monkeypatch):
    """A dataset failing on its first attempt only ends ok after 2 attempts; the result object,
    the CSV and the JSON agree (an in-process cluster, so the failure can be injected)."""
    from distributed import Client, LocalCluster
    import aetcore.app.folder

    real_run = aetcore.app.folder.run
    calls = []

    def flaky_run(**kw):
        calls.append(Path(kw["out"]).name)
        if calls.count("p2") == 1 and Path(kw["out"]).name == "p2":
            raise RuntimeError("transient failure of the node\n" + "detail line\n" * 300)
        return real_run(**kw)

    monkeypatch.setattr(aetcore.app.folder, "run", flaky_run)
    head, _, bad, p2 = GOOD_AND_BAD.split("[[dataset]]")
    m = _manifest(data, head.replace('out = "results"', 'out = "results-py"') + "[[dataset]]" + p2
                  + "[[dataset]]" + bad + "config = { reconstruct = { iterations = 5 } }\n", "py.toml")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl, \
            Client(cl) as client:
        res = batch(m, scheduler=client, threads_per_worker=1, progress=False, retries=1)
        assert client.status == "running"  # a Client we passed in is not closed
    assert [r["name"] for r in res] == ["p2", "bad"] and len(res) == 2
    assert res.ok == ["p2"] and res.failed == ["bad"]
    assert res["p2"]["attempts"] == 2 and res["p2"]["status"] == "ok" and res["p2"]["error"] is None
    assert res["p2"]["errors"][0]["error"].startswith("RuntimeError: transient failure of the node")
    assert len(res["p2"]["errors"][0]["error"].splitlines()) <= 4  # not a 300-line message
    assert res["bad"]["attempts"] == 2 and "ValueError" in res["bad"]["error"]
    assert sorted(calls) == ["bad", "bad", "p2", "p2"]
    assert res["p2"]["atoms"] == sum(res["p2"]["counts"].values()) > 20
    with pytest.raises(KeyError, match="p1"):
        res["p1"]
    with open(res.csv_path, newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "failed"]
    assert "bad: ValueError:" in res.table()
    with pytest.raises(ValueError, match="workers"):
        batch(m, scheduler=client, workers=2)


def test_bad_manifest_exits_2_and_names_every_problem(data, tmp_path):
    m = _manifest(tmp_path, f"""
[defaults]
pixelsize = 0.4
species = "Fe,Xx"
out = "never"
[defaults.config]
reconstruct.iters = 30

[[dataset]]
name = "p1"
tilts = "{data / 'p1' / 'tilts.npy'}"
angles = "{data / 'p1' / 'angles.txt'}"

[[dataset]]
name = "p1"
tilts = "missing/tilts.npy"
angles = "{data / 'p1' / 'angles.txt'}"
frames = 0

[[dataset]]
name = "batch.csv"
tilts = "{data / 'p1' / 'tilts.npy'}"
angles = "{data / 'p1' / 'angles.txt'}"
""")
    rc, out, err = _aet_batch([str(m)])
    assert rc == 2
    assert "'pixelsize'" in err  # unknown key
    assert "Xx" in err  # unknown element
    assert "reconstruct.iters" in err  # unknown configuration key
    assert str(tmp_path / "missing" / "tilts.npy") in err and "no such file" in err
    assert "already the name" in err and "frames" in err
    assert "pixel_size: missing" in err
    assert "'batch.csv' is the name of the results table" in err
    assert not (tmp_path / "never").exists()  # nothing started
    with pytest.raises(ManifestError) as e:
        load_manifest(m)
    assert len(e.value.problems) >= 8

    rc, _, err = _aet_batch([str(tmp_path / "nope.toml")])
    assert rc == 2 and "nope.toml" in err and "no such file" in err
    rc, _, err = _aet_batch([str(_manifest(tmp_path, "[defaults\n", "broken.toml"))])
    assert rc == 2 and "not valid TOML" in err


def test_manifest_layers_and_paths(data):
    (data / "base.toml").write_text("[reconstruct]\niterations = 70\noversampling = 2.0\n[trace]\nmin_distance = 1.8\n")
    (data / "sweep").mkdir(exist_ok=True)
    (data / "sweep" / "more.toml").write_text("[trace]\nmin_distance = 2.2\n")
    m = _manifest(data, """
[defaults]
pixel_size = 0.4
species = "Fe,Pt"
config_file = "base.toml"
seed = 3
[defaults.config]
reconstruct.iterations = 40

[[dataset]]
name = "it40"
tilts = "p1/tilts.npy"
angles = "p1/angles.txt"

[[dataset]]
name = "it80"
tilts = "p1/tilts.npy"
angles = "p1/angles.txt"
species = ["Pt"]
pixel_size = 0.5
config_file = "sweep/more.toml"
[dataset.config.reconstruct]
iterations = 80
""", "sweep.toml")
    man = load_manifest(m)
    assert man.out == data / "sweep_results"
    a, b = man.datasets
    assert a.tilts == data / "p1" / "tilts.npy" and a.tilts.is_absolute()
    assert a.species == ("Fe", "Pt") and b.species == ("Pt",) and man.species == ("Fe", "Pt")
    assert (a.pixel_size, b.pixel_size, a.seed, b.frames) == (0.4, 0.5, 3, 1)
    # layers: defaults file < [defaults.config] < dataset file < [dataset.config]
    assert a.config["reconstruct"]["iterations"] == 40 and b.config["reconstruct"]["iterations"] == 80
    assert a.config["reconstruct"]["oversampling"] == b.config["reconstruct"]["oversampling"] == 2.0
    assert a.config["trace"]["min_distance"] == 1.8 and b.config["trace"]["min_distance"] == 2.2
    assert a.out == data / "sweep_results" / "it40"
    rc, out, _ = _aet_batch([str(m), "--check"])
    assert rc == 0 and "2 dataset(s)" in out

    # the complete configuration written for a worker reads back as the same configuration
    from aetcore.app.config import config_toml, load_config
    (data / "written.toml").write_text(config_toml(b.config, f"dataset {b.name}"))
    assert load_config(data / "written.toml") == b.config

    # a config file given as `config` is refused with a hint
    bad = _manifest(data, 'config = 1\n[[dataset]]\nname = "x"\ntilts = "p1/tilts.npy"\nangles = "p1/angles.txt"\n'
                    'pixel_size = 0.4\nspecies = "Pt"\nconfig = "base.toml"\n', "bad_cfg.toml")
    with pytest.raises(ManifestError, match="config_file") as e:
        load_manifest(bad)
    assert "unknown top-level key(s) 'config'" in str(e.value)


def test_manifest_angle_convention(data):
    """angle_convention in [defaults] or a dataset reaches the dataset (aet areas runs the Ta film's
    resire angles through it); a name that is not a convention is a manifest problem."""
    m = _manifest(data, """
[defaults]
pixel_size = 0.4
species = "Fe,Pt"
angle_convention = "resire"
[[dataset]]
name = "a"
tilts = "p1/tilts.npy"
angles = "p1/angles.txt"
[[dataset]]
name = "b"
tilts = "p1/tilts.npy"
angles = "p1/angles.txt"
angle_convention = "aetcore"
""", "conventions.toml")
    a, b = load_manifest(m).datasets
    assert (a.angle_convention, b.angle_convention) == ("resire", "aetcore")
    bad = _manifest(data, m.read_text().replace('"resire"', '"matlab"'), "bad_convention.toml")
    with pytest.raises(ManifestError, match="angle_convention: expected one of aetcore"):
        load_manifest(bad)


def test_batch_refuses_bad_arguments(data):
    m = _manifest(data, GOOD_AND_BAD.replace('out = "results"\n', ''), "args.toml")
    for kw, match in (({"retries": -1}, "retries"), ({"workers": 0}, "workers"),
                      ({"threads_per_worker": 1.5}, "threads_per_worker"), ({"scheduler": 3}, "scheduler")):
        with pytest.raises((ValueError, TypeError), match=match):
            batch(m, progress=False, **kw)
    assert not (data / "args_results").exists()


def test_a_killed_worker_is_survived(data):
    """The worker process running a dataset dies mid-run: the nanny restarts it, dask reschedules
    the dataset, and the batch ends ok."""
    import os
    import signal
    import threading
    from distributed import Client, LocalCluster

    m = _manifest(data, GOOD_AND_BAD.split("[[dataset]]")[0].replace('"results"', '"results-kill"')
                  + '[[dataset]]\nname = "p1"\ntilts = "p1/tilts.npy"\nangles = "p1/angles.txt"\n', "kill.toml")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cl, Client(cl) as client:
        first_pid = next(iter(client.run(os.getpid).values()))
        box = {}
        # the scheduler by address, as `aet batch --scheduler tcp://...` gives it
        th = threading.Thread(target=lambda: box.update(res=batch(m, scheduler=cl.scheduler_address,
                                                                   threads_per_worker=1, progress=False)))
        th.start()
        t0 = time.perf_counter()
        while not any(k.startswith("aet-batch-p1") for ks in client.processing().values() for k in ks):
            assert time.perf_counter() - t0 < 30, "the dataset never started"
            time.sleep(0.05)
        time.sleep(0.3)  # inside aetcore.app.folder.run
        os.kill(first_pid, signal.SIGKILL)
        th.join(120)
        assert not th.is_alive()
    res = box["res"]
    assert res.scheduler == cl.scheduler_address and res.threads_per_worker == 1
    assert res.ok == ["p1"] and res["p1"]["attempts"] == 1
    assert not res["p1"]["worker"].endswith(f":{first_pid}")  # finished by the restarted worker
    assert (data / "results-kill" / "p1" / "atoms.xyz").is_file()


def test_unreachable_scheduler_exits_2(data, monkeypatch):
    import importlib
    import socket
    # the module (aetcore.batch is the module aetcore.app.batch)
    monkeypatch.setattr(importlib.import_module("aetcore.batch"), "_CONNECT_TIMEOUT", "1s")
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m = _manifest(data, GOOD_AND_BAD.replace('"results"', '"results-unreachable"'), "unreachable.toml")
    rc, _, err = _aet_batch([str(m), "--scheduler", f"tcp://127.0.0.1:{port}", "--quiet"])
    assert rc == 2 and f"tcp://127.0.0.1:{port}" in err and "cannot connect" in err
    rc, _, err = _aet_batch([str(m), "--scheduler", f"tcp://127.0.0.1:{port}", "--workers", "2"])
    assert rc == 2 and "workers" in err
    assert not (data / "results-unreachable").exists()  # nothing ran, nothing written
