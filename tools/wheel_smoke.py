"""Smoke test of an installed aetcore wheel: bundled FFTW, one version, and ``aet run`` scored.

Run it with the Python of an environment where the wheel is installed, from a folder outside the
source checkout (``make test-wheel`` and cibuildwheel's ``test-command`` do)::

    python tools/wheel_smoke.py            # the checks, exit status 1 on a failure
    python tools/wheel_smoke.py --requirements   # print the wheel's runtime requirements and exit

The checks:

1. ``aetcore`` is imported from this environment's site-packages, not from a source tree.
2. The compiled module takes FFTW from the wheel: on Linux every ``libfftw3f*`` (and ``libgomp``)
   that ``ldd`` resolves for ``aetcore/_core*.so`` lies in ``aetcore.libs/``, and so do the copies
   mapped into this process after a reconstruction (``/proc/self/maps``); on macOS ``otool -L``
   names them under ``@loader_path``; on Windows they are DLLs in ``aetcore.libs/``.
3. ``aetcore.__version__``, ``aet --version`` and the installed metadata give one version.
4. ``aet simulate`` writes a small FePt tilt series, ``aet run`` takes it to atoms (a shortened
   reconstruction, ``smoke.toml``), and :func:`aetcore.match_atoms` scores them against the
   simulated truth: recall and species accuracy at least 0.9.
"""
import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib.metadata import distribution
from pathlib import Path

MIN_RECALL = 0.9
MIN_SPECIES_ACCURACY = 0.9
# A 48 px, 21-angle series of a radius-6 Å particle (about 55 atoms): ~15 s on 2 cores.
SIMULATE = ["--size", "48", "--angles", "21", "--radius", "6", "--seed", "1"]
SMOKE_CONFIG = "[reconstruct]\niterations = 50\nhalf_set_fsc = false\n"
BUNDLED = ("libfftw3f", "libgomp")  # libraries that must come from the wheel on Linux


def fail(message):
    print(f"wheel smoke test FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def runtime_requirements():
    """The wheel's ``Requires-Dist`` entries that belong to no extra (markers kept for pip)."""
    return [r for r in (distribution("aetcore").requires or []) if "extra ==" not in r]


def aet_command():
    scripts = Path(sysconfig.get_path("scripts"))
    exe = shutil.which("aet", path=str(scripts))
    if exe is None:
        fail(f"the aet command is not installed in {scripts}")
    return exe


def check_location(pkg_dir):
    site = {Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")}
    if pkg_dir.parent.resolve() not in site:
        fail(f"aetcore was imported from {pkg_dir}, not from this environment's site-packages {sorted(site)}")
    print(f"aetcore imported from {pkg_dir}")


def check_bundled_linux(pkg_dir, core):
    libs = (pkg_dir.parent / "aetcore.libs").resolve()
    if not libs.is_dir():
        fail(f"{libs} is missing: the wheel was not repaired (auditwheel)")
    out = subprocess.run(["ldd", str(core)], capture_output=True, text=True, check=True).stdout
    print(f"ldd {core.name}:\n{out.rstrip()}")
    resolved = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(.*?)\s+\(0x", line)
        if m:
            resolved[m.group(1)] = m.group(2)
        elif "not found" in line:
            fail(f"ldd: {line.strip()}")
    for name in BUNDLED:
        hits = {k: v for k, v in resolved.items() if k.startswith(name)}
        if not hits:
            fail(f"{core.name} links no {name}*; ldd resolved {sorted(resolved)}")
        for lib, path in hits.items():
            if Path(path).resolve().parent != libs:
                fail(f"{lib} resolves to {path}, not to the wheel's {libs}")
    # What the loader really mapped into this process, after FFTW has planned and run.
    import numpy as np
    import aetcore
    aetcore.genfire(np.ones((3, 16, 16), np.float32), np.array([-30.0, 0.0, 30.0]), iterations=2, threads=2)
    mapped = {line.split(None, 5)[5].strip() for line in Path("/proc/self/maps").read_text().splitlines()
              if len(line.split(None, 5)) == 6 and any(n in line for n in BUNDLED)}
    outside = [p for p in mapped if Path(p).resolve().parent != libs]
    if outside or not mapped:
        fail(f"FFTW/OpenMP mapped from outside the wheel: {outside or 'nothing mapped'}")
    print("loaded in this process from the wheel:", ", ".join(sorted(Path(p).name for p in mapped)))


def check_bundled_macos(core):
    out = subprocess.run(["otool", "-L", str(core)], capture_output=True, text=True, check=True).stdout
    print(out.rstrip())
    fftw = [line.strip() for line in out.splitlines() if "fftw3f" in line]
    if not fftw or not all(line.startswith("@loader_path") for line in fftw):
        fail(f"FFTW is not taken from the wheel's .dylibs: {fftw}")


def check_bundled_windows(pkg_dir):
    libs = pkg_dir.parent / "aetcore.libs"
    dlls = sorted(p.name for p in libs.glob("*.dll")) if libs.is_dir() else []
    print("bundled DLLs:", dlls)
    if not any("fftw3f" in d for d in dlls):
        fail(f"no FFTW DLL in {libs} (delvewheel repair)")


def check_version(aet):
    import aetcore
    meta = distribution("aetcore").version
    cli = subprocess.run([aet, "--version"], capture_output=True, text=True, check=True).stdout.split()
    print(f"versions: aetcore.__version__ {aetcore.__version__}, metadata {meta}, aet --version {' '.join(cli)}")
    if not (aetcore.__version__ == meta and cli[-1:] == [meta]):
        fail("the three versions differ")


def smoke_run(aet, workdir):
    import ase.io
    import aetcore
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args):
        print("$ aet", " ".join(args), flush=True)
        subprocess.run([aet, *args], cwd=workdir, env=env, check=True)

    (workdir / "smoke.toml").write_text(SMOKE_CONFIG)
    run("simulate", "--out", "sim", *SIMULATE)
    run("run", "sim/tilts.npy", "--angles", "sim/angles.txt", "--pixel-size", "0.4", "--species", "Fe,Pt",
        "--config", "smoke.toml", "--out", "result", "--quiet")
    truth = ase.io.read(workdir / "sim" / "truth.xyz")
    found = ase.io.read(workdir / "result" / "atoms.xyz")
    score = aetcore.match_atoms(truth.positions, truth.get_chemical_symbols(),
                                found.positions, found.get_chemical_symbols())
    print(score.summary())
    if score.recall < MIN_RECALL or score.species_accuracy < MIN_SPECIES_ACCURACY:
        fail(f"recall {score.recall:.3f} / species accuracy {score.species_accuracy:.3f} below "
             f"{MIN_RECALL} / {MIN_SPECIES_ACCURACY}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", action="store_true",
                        help="print the installed wheel's runtime requirements (one per line) and exit")
    args = parser.parse_args()
    if args.requirements:
        print("\n".join(runtime_requirements()))
        return
    import aetcore
    pkg_dir = Path(aetcore.__file__).parent
    check_location(pkg_dir)
    cores = sorted(pkg_dir.glob("_core*"))
    if not cores:
        fail(f"no compiled module in {pkg_dir}")
    system = platform.system()
    if system == "Linux":
        check_bundled_linux(pkg_dir, cores[0])
    elif system == "Darwin":
        check_bundled_macos(cores[0])
    elif system == "Windows":
        check_bundled_windows(pkg_dir)
    aet = aet_command()
    check_version(aet)
    with tempfile.TemporaryDirectory(prefix="aetcore-smoke-") as tmp:
        smoke_run(aet, Path(tmp))
    print("wheel smoke test passed")


if __name__ == "__main__":
    main()
