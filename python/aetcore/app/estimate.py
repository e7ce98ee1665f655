"""What an ``aet run`` will need before it starts: peak memory per step, checked against what the
machine has, with the option to lower when it does not fit.

:func:`estimate_run` counts, for a tilt series of ``K`` angles x ``frames`` frames of ``ny x nx``
pixels and a configuration, the bytes each step holds at its peak:

``preprocess``
    the raw frames as read (float32) and the float64 working copies of one angle's frames per
    thread, plus the float32 averaged series;
``align``
    the series, its shifted copy and the binned projection-matching volume;
``reconstruct``
    the GENFIRE estimate of the core (:func:`aetcore.steps.reconstruct.genfire_memory`: the largest
    of its three phases, gridding, sorting and iterating; 68 images of 96^2, 128^2 and 192^2: 0.15,
    0.33 and 1.01 GiB against measured peaks of 0.18, 0.35 and 1.04 GiB above the interpreter) plus
    the aligned series it is given and the automatic support's float64 volumes; the half-set FSC
    reconstructions run one after the other, so they do not add to the peak;
``trace``
    the volume and the tracing buffers (four float volumes);
``classify``
    the volume, the padded copy its trilinear sampling gathers from and the sample blocks (four
    float volumes);
``evidence``, ``refine``
    the series in float64 for the residuals, one model projection per thread and the atom
    parameters (an upper bound on the atom count: one atom per 8 Å^3 of the box).

Every count is a lower bound of what Python and the libraries really hold (interpreter, imported
modules, temporary arrays): a fixed 400 MiB is added for those. bench/README.md compares the
estimate with the peak resident memory of real runs.

Examples
--------
>>> from aetcore.app.config import default_config
>>> e = estimate_run((68, 288, 288), default_config())
>>> e.peak_step
'reconstruct'
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .._util.memory import available_bytes, format_bytes
from .._util.validate import at_least, resolve_threads

__all__ = ["RunEstimate", "estimate_run", "check_run_memory", "BASE_BYTES"]

#: Bytes the interpreter and the imported libraries (NumPy, SciPy, h5py, matplotlib, the core) hold
#: before any data: measured as the resident size of ``python -c "import aetcore.app.folder"``
#: plus the report's matplotlib, rounded up.
BASE_BYTES = 400 * 2**20


@dataclass(frozen=True)
class RunEstimate:
    """Peak bytes per step of ``aet run`` (:func:`estimate_run`).

    Attributes
    ----------
    steps : dict
        Step name to bytes at that step's peak, :data:`BASE_BYTES` included.
    peak_step : str
        The step with the largest need.
    peak : int
        Its bytes.
    volume_shape : tuple
        The reconstruction box ``(nz, ny, nx)``, voxels.
    """

    steps: dict = field(default_factory=dict)
    peak_step: str = ""
    peak: int = 0
    volume_shape: tuple = ()

    def summary(self) -> str:
        """One line: the peak, its step and the box."""
        nz, ny, nx = self.volume_shape
        return (f"memory estimate {format_bytes(self.peak)} at the {self.peak_step} step "
                f"({nz} x {ny} x {nx} voxel box)")


def estimate_run(series_shape, config, *, frames: int = 1, threads=None) -> RunEstimate:
    """Peak memory of each step of ``aet run`` on a series of `series_shape`.

    Parameters
    ----------
    series_shape : (K, ny, nx)
        Angles and pixels per image (after averaging the frames).
    config : dict
        The run's configuration ``{section: {key: value}}`` (:func:`aetcore.app.config.default_config`
        merged with the user's).
    frames : int
        Frames per angle in the file.
    threads : int, optional
        OpenMP threads (None: every core): per-thread buffers grow with it.

    Returns
    -------
    RunEstimate
    """
    from ..steps.reconstruct import genfire_memory
    if not (isinstance(series_shape, (tuple, list)) and len(series_shape) == 3):
        raise ValueError(f"series_shape: expected (K, ny, nx), got {series_shape!r}")
    k, ny, nx = (at_least(v, 1, "series_shape", integer=True) for v in series_shape)
    frames = at_least(frames, 1, "frames", integer=True)
    nt = resolve_threads(threads)
    rc = config["reconstruct"]
    vol_shape = (nx, ny, nx)
    image = 4.0 * ny * nx
    series = k * image
    vox = float(nx) * ny * nx
    steps = {}
    steps["preprocess"] = k * frames * image + 2 * nt * frames * 2 * image + 2 * series
    # align: the series and its shifted copy, the binned (<= 96 px) matching volume and its gradient
    b = max(1.0, max(ny, nx) / 96.0)
    steps["align"] = 3 * series + 2 * 4.0 * (nx / b) * (ny / b) * (nx / b)
    # the core's GENFIRE; the aligned series; the automatic support's float64 smoothing and masks
    steps["reconstruct"] = genfire_memory(k, (ny, nx), volume_shape=vol_shape, oversampling=rc["oversampling"],
                                          interpolation_radius=rc["interpolation_radius"],
                                          plane_upsampling=rc["plane_upsampling"], threads=nt) + series + 3 * 8.0 * vox
    steps["trace"] = 4 * 4.0 * vox
    # classify: the volume, the padded copy its trilinear sampling gathers from and the blocks of
    # samples; measured 3.5 volumes of numpy memory at 384 px (871 MiB resident against 832 estimated
    # with two volumes, bench/README.md, scale.py), 2.7 at 256^3 (tests/app/test_estimate.py)
    steps["classify"] = 4 * 4.0 * vox
    atoms = vox * 0.4 ** 3 / 8.0  # at most one atom per 8 Å^3 at a typical 0.4 Å pixel
    fitting = 2 * 8.0 * series + nt * 8.0 * ny * nx + 200.0 * atoms
    # evidence: the candidate search of every round also holds about seven float32 volumes (the two
    # back-projections, their smoothed copies and the gain map with its maximum filter); without them
    # the estimate was 782 MiB for a measured 1169-1203 MiB at 288 px (bench/README.md, scale.py)
    steps["evidence"] = fitting + 7 * 4.0 * vox if config.get("evidence", {}).get("enabled", True) else 0.0
    steps["refine"] = fitting if config.get("refine", {}).get("enabled", True) else 0.0
    steps = {s: int(v + BASE_BYTES) for s, v in steps.items()}
    peak_step = max(steps, key=steps.get)
    return RunEstimate(steps, peak_step, steps[peak_step], vol_shape)


def _advice(est: RunEstimate, series_shape, config, frames, threads, available) -> str:
    """What to lower: the options of the peak step, with the estimate each would give."""
    if est.peak_step == "reconstruct":
        tips = []
        cur = float(config["reconstruct"]["oversampling"])
        for o in (2.0, 1.5):
            if o < cur:
                c = {**config, "reconstruct": {**config["reconstruct"], "oversampling": o}}
                e = estimate_run(series_shape, c, frames=frames, threads=threads)
                tips.append(f"[reconstruct] oversampling = {o:g} needs {format_bytes(e.peak)}")
        tips.append("or crop or bin the images (the box is nx x ny x nx)")
        return "lower " + "; ".join(tips)
    if est.peak_step == "preprocess":
        return "average or crop the frames before the run (all frames are held at once)"
    if est.peak_step in ("evidence", "refine"):
        return "lower --threads (one model projection per thread) or crop the images"
    return "crop or bin the images"


def check_run_memory(series_shape, config, *, frames: int = 1, threads=None) -> RunEstimate:
    """:func:`estimate_run`, refused with :class:`MemoryError` when its peak exceeds the memory
    available now (:func:`aetcore._util.memory.available_bytes`: free memory, cgroup and ``ulimit``
    limits, ``AETCORE_MEMORY_LIMIT``). The message gives the need, what is available, the step and
    the option to lower.
    """
    est = estimate_run(series_shape, config, frames=frames, threads=threads)
    avail = available_bytes()
    if est.peak > avail:
        raise MemoryError(f"{est.summary()}, but {format_bytes(avail)} is available; "
                          + _advice(est, series_shape, config, frames, threads, avail))
    return est
