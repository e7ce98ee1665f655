"""The C++ GENFIRE, called from C++ with the same inputs and seed, gives the same volume as
``aetcore.genfire`` (issue 11, "Done when").

Run by ctest as ``python genfire_cross_check.py <path of the genfire_cross_check binary>``: makes a
deterministic phantom with aetcore (Gaussian atoms at fixed positions, exact projections), writes the
raw inputs, runs the C++ program on them and ``aetcore.genfire`` in this process with the same
options, seed and thread count, and compares the volumes. Exit status 0: equal to float32 rounding;
1: they differ; 77 (ctest's SKIP_RETURN_CODE): no importable aetcore in this Python (a build without
the Python package), so there is nothing to compare with.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np

    import aetcore
    from aetcore._util.validate import as_angles
    from aetcore.model.projection import project_atoms
except ImportError as e:  # pragma: no cover - depends on the environment
    print(f"skipped: aetcore is not importable from {sys.executable} ({e})")
    sys.exit(77)


def main(binary: str) -> int:
    # 27 Pt atoms on a slightly sheared grid (no RNG: the same numbers everywhere)
    g = np.arange(-1, 2, dtype=np.float64)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) * 2.6
    pts += 0.3 * np.sin(np.arange(pts.size)).reshape(pts.shape)
    angles = np.linspace(-65.0, 70.0, 25)
    shape, ps = (28, 32, 30), 0.4
    tilts = project_atoms(pts, np.full(len(pts), "Pt"), angles, (32, 30), ps).astype(np.float32)
    z, y, x = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    support = (x ** 2 + y ** 2 + z ** 2) <= 13 ** 2
    kw = dict(oversampling=2.0, iterations=40, seed=20261204, threads=2, rfree_fraction=0.05)

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        euler = np.radians(as_angles(angles, len(angles)))
        tilts.tofile(d / "tilts.f32")
        np.ascontiguousarray(euler, np.float64).tofile(d / "euler.f64")
        support.astype(np.uint8).tofile(d / "support.u8")
        params = dict(K=len(angles), ny=32, nx=30, nz=shape[0], vy=shape[1], vx=shape[2], **kw)
        (d / "params.txt").write_text("".join(f"{k} {v}\n" for k, v in params.items()))
        subprocess.run([binary, str(d), str(d / "out.f32")], check=True)
        cpp = np.fromfile(d / "out.f32", np.float32).reshape(shape)

    py = aetcore.genfire(tilts, angles, pixel_size=ps, support=support, volume_shape=shape, progress=False, **kw)
    vol = py.volume
    diff = float(np.abs(cpp - vol).max())
    rel = float(np.linalg.norm(cpp - vol) / np.linalg.norm(vol))
    # float32 rounding: the two builds may pick different FFTW plans (FFTW_MEASURE), whose results
    # differ in the last bits; 40 iterations carry that to about 3e-6 of the volume (measured)
    ok = rel < 1e-4 and diff <= 1e-4 * float(np.abs(vol).max())
    print(f"C++ vs aetcore.genfire: max |difference| {diff:.3g} (volume max {np.abs(vol).max():.3g}), "
          f"relative {rel:.3g}, bit-identical: {bool(np.array_equal(cpp, vol))} -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
