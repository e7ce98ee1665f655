"""The figures of a results folder's report: orthoslices and projections of a volume, per-species
intensity histograms, convergence, FSC, atoms and alignment shifts, and the summary table. Every
function returns a matplotlib Figure on an Agg canvas (no display, no pyplot state).
"""
from __future__ import annotations

import html as _html

import numpy as np

from .._util.validate import as_angles, as_positions, as_volume, positive, real_array

__all__ = ["orthoslices_figure", "projections_figure", "species_intensity_stats", "intensity_histogram_figure", "convergence_figure", "fsc_figure", "atoms_figure", "shifts_figure", "areas_map_figure", "summary_html"]


# --------------------------------------------------------------------------------------------
# Figures of ``aet run``: NumPy arrays in, a matplotlib Figure out (Agg canvas, no pyplot state)
# --------------------------------------------------------------------------------------------

def _new_figure(width: float, height: float):
    """A Figure on an Agg canvas: no display, no global backend switch, no pyplot bookkeeping."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _species_order(symbols, species=None) -> list:
    seen = list(dict.fromkeys(symbols))
    if species is None:
        return sorted(seen)
    return list(species) + sorted(s for s in seen if s not in species)


def _species_colors(names) -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(names)}


def _symbols(symbols, n: int | None, name: str = "symbols") -> list:
    if isinstance(symbols, str) or not hasattr(symbols, "__len__"):
        raise TypeError(f"{name}: expected a sequence of element symbols (one per atom), got {type(symbols).__name__}")
    out = list(symbols.tolist() if isinstance(symbols, np.ndarray) else symbols)
    bad = [s for s in out if not isinstance(s, str)]
    if bad:
        raise TypeError(f"{name}: expected element symbols as str, got {type(bad[0]).__name__} {bad[0]!r}")
    if n is not None and len(out) != n:
        raise ValueError(f"{name}: expected {n} symbols (one per atom), got {len(out)}")
    return out


def _species_list(species, name: str = "species") -> list:
    if species is None:
        return None
    if isinstance(species, str):
        species = [s.strip() for s in species.split(",") if s.strip()]
    try:
        out = list(species)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of element symbols, got {type(species).__name__}") from None
    if not out or not all(isinstance(s, str) and s for s in out):
        raise ValueError(f"{name}: expected a non-empty sequence of element symbols, got {species!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct symbols, got {out}")
    return out


def _vector(a, name: str, n: int | None = None, allow_empty: bool = False) -> np.ndarray:
    if isinstance(a, (list, tuple)):
        a = np.asarray(a, dtype=np.float64) if len(a) else np.zeros(0)
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a 1-D array of numbers, got {type(a).__name__}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    if n is not None and a.size != n:
        raise ValueError(f"{name}: expected {n} values (one per atom), got {a.size}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got {int(np.count_nonzero(~np.isfinite(a)))} NaN or Inf")
    return a


def _nice_length(span: float) -> float:
    """A 1/2/5 x 10^k length close to a quarter of `span` (Å)."""
    target = max(span / 4.0, 1e-9)
    k = np.floor(np.log10(target))
    best = None
    for m in (1.0, 2.0, 5.0, 10.0):
        v = m * 10.0 ** k
        if v <= target * 1.5:
            best = v
    return float(best if best is not None else 10.0 ** k)


def _length_label(angstrom: float) -> str:
    if angstrom >= 10.0:
        return f"{angstrom / 10.0:g} nm"
    return f"{angstrom:g} Å"


def _scale_bar(ax, span: float) -> float:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = _nice_length(span)
    bar = AnchoredSizeBar(ax.transData, length, _length_label(length), "lower right", pad=0.4, color="white",
                          frameon=False, size_vertical=span / 120.0, fontproperties={"size": 9, "weight": "bold"})
    bar.set_gid("scale-bar")
    ax.add_artist(bar)
    return length


def _extent(n_cols: int, n_rows: int, p: float) -> list:
    """imshow extent (Å) of an (n_rows, n_cols) image with the origin at n // 2 (CONVENTIONS)."""
    return [(-0.5 - n_cols // 2) * p, (n_cols - 0.5 - n_cols // 2) * p,
            (-0.5 - n_rows // 2) * p, (n_rows - 0.5 - n_rows // 2) * p]


def _three_views(images, labels, titles, pixel_size, suptitle, cbar_label, cmap):
    """Three images (rows = vertical axis) on a shared colour scale, axes in Å, with scale bars."""
    widths = [im.shape[1] for im in images]
    fig = _new_figure(4.0 * 3 + 1.2, 4.3)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": widths})
    lo = float(min(im.min() for im in images))
    hi = float(max(im.max() for im in images))
    if hi <= lo:
        hi = lo + 1.0
    mappable = None
    for ax, im, (xl, yl), title in zip(axes, images, labels, titles):
        ext = _extent(im.shape[1], im.shape[0], pixel_size)
        mappable = ax.imshow(im, origin="lower", extent=ext, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_xlabel(f"{xl} (Å)")
        ax.set_ylabel(f"{yl} (Å)")
        ax.set_title(title, fontsize=10)
        _scale_bar(ax, ext[1] - ext[0])
    fig.colorbar(mappable, ax=list(axes), shrink=0.85, label=cbar_label)
    fig.suptitle(suptitle)
    return fig


def orthoslices_figure(volume, pixel_size):
    """Three orthogonal slices through the centre of a volume.

    Parameters
    ----------
    volume : (nz, ny, nx) array
        Reconstruction, indexed ``vol[z, y, x]``; the centre is index ``n // 2`` of each axis.
    pixel_size : float
        Voxel size, Å.

    Returns
    -------
    matplotlib.figure.Figure
        Panels: the xy slice at z = 0, the xz slice at y = 0, the yz slice at x = 0; axes in Å
        (origin at the volume centre), a scale bar in each panel and one shared colour bar.
    """
    v = as_volume(volume)
    p = positive(pixel_size, "pixel_size")
    nz, ny, nx = v.shape
    images = [v[nz // 2], v[:, ny // 2, :], v[:, :, nx // 2]]
    return _three_views(images, [("x", "y"), ("x", "z"), ("y", "z")],
                        ["xy slice, z = 0 Å", "xz slice, y = 0 Å", "yz slice, x = 0 Å"], p,
                        f"Orthoslices through the centre ({nz}×{ny}×{nx} voxels, {p:g} Å/voxel)",
                        "voxel value (arb. units)", "gray")


def projections_figure(volume, pixel_size):
    """Maximum-intensity projections of a volume along z, y and x.

    Parameters
    ----------
    volume : (nz, ny, nx) array
        Reconstruction, indexed ``vol[z, y, x]``.
    pixel_size : float
        Voxel size, Å.

    Returns
    -------
    matplotlib.figure.Figure
        Panels: max over z (an xy image), over y (xz), over x (yz); axes in Å, scale bars,
        shared colour bar.
    """
    v = as_volume(volume)
    p = positive(pixel_size, "pixel_size")
    images = [v.max(axis=0), v.max(axis=1), v.max(axis=2)]
    return _three_views(images, [("x", "y"), ("x", "z"), ("y", "z")],
                        ["max along z", "max along y", "max along x"], p,
                        "Maximum-intensity projections", "maximum voxel value (arb. units)", "magma")


def species_intensity_stats(intensity, symbols, species=None) -> dict:
    """Per-species count, mean and standard deviation of the atoms' integrated intensity.

    Parameters
    ----------
    intensity : (n_atoms,) array
        Integrated intensity of each atom (volume units × Å³ or arb. units).
    symbols : (n_atoms,) sequence of str
        Assigned species of each atom.
    species : sequence of str, optional
        Species in the order to report them (all of them, also those without atoms); symbols not
        listed are appended in alphabetical order.

    Returns
    -------
    dict
        ``{symbol: {"n": int, "mean": float, "std": float}}`` (population std, ``ddof=0``;
        ``mean``/``std`` are NaN for a species without atoms), in species order.
    """
    I = _vector(intensity, "intensity", allow_empty=True)
    sym = _symbols(symbols, I.size)
    names = _species_order(sym, _species_list(species))
    sym_arr = np.asarray(sym, dtype=object)
    out = {}
    for s in names:
        vals = I[sym_arr == s] if I.size else I
        out[s] = {"n": int(vals.size),
                  "mean": float(vals.mean()) if vals.size else float("nan"),
                  "std": float(vals.std()) if vals.size else float("nan")}
    return out


def intensity_histogram_figure(intensity, symbols, species=None, *, bins=None):
    """Histogram of the atoms' integrated intensity, coloured by assigned species, with each
    species' Gaussian (mean and std of its atoms) overlaid.

    Parameters
    ----------
    intensity : (n_atoms,) array
        Integrated intensity per atom (arb. units), at least one atom.
    symbols : (n_atoms,) sequence of str
        Assigned species per atom.
    species : sequence of str, optional
        Species order (colours follow it, as in :func:`atoms_figure`).
    bins : int, optional
        Number of bins; default from the geometric mean of the species'
        Freedman–Diaconis bin widths, clipped to 15..80 bins.

    Returns
    -------
    matplotlib.figure.Figure
        A stacked histogram; each fitted curve is a ``Line2D`` with gid ``"fit-<symbol>"``
        scaled to the species' count (``n · bin width · normal pdf``) and sampled at its mean
        among other points, so its maximum lies exactly at the mean.
    """
    I = _vector(intensity, "intensity")
    sym = _symbols(symbols, I.size)
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1):
        raise ValueError(f"bins: expected a positive int, got {bins!r}")
    stats = species_intensity_stats(I, sym, species)
    names = list(stats)
    colors = _species_colors(names)
    lo, hi = float(I.min()), float(I.max())
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    sym_arr = np.asarray(sym, dtype=object)
    if bins is None:
        # geometric mean of the species' Freedman-Diaconis widths (species lie far apart, so the
        # rule on all atoms together would give a few wide bins)
        widths = []
        for s in names:
            v = I[sym_arr == s]
            if v.size >= 4:
                q75, q25 = np.percentile(v, [75, 25])
                if q75 > q25:
                    widths.append(2.0 * (q75 - q25) / v.size ** (1.0 / 3.0))
        bins = int(np.clip(np.ceil((hi - lo) / np.exp(np.mean(np.log(widths)))), 15, 80)) if widths else 30
    edges = np.linspace(lo, hi, int(bins) + 1)
    width = edges[1] - edges[0]
    present = [s for s in names if stats[s]["n"]]
    fig = _new_figure(7.5, 4.5)
    ax = fig.subplots()
    ax.hist([I[sym_arr == s] for s in present], bins=edges, stacked=True, color=[colors[s] for s in present],
            alpha=0.75, edgecolor="white", linewidth=0.4,
            label=[f"{s} ({stats[s]['n']} atoms)" for s in present])
    span = hi - lo
    for s in present:
        m, sd, n = stats[s]["mean"], stats[s]["std"], stats[s]["n"]
        if sd > 0:
            x = np.union1d(np.linspace(min(lo, m - 4 * sd) - 0.05 * span, max(hi, m + 4 * sd) + 0.05 * span, 400), [m])
            y = n * width * np.exp(-0.5 * ((x - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            ax.plot(x, y, color=colors[s], linewidth=2.0, gid=f"fit-{s}",
                    label=f"{s} fit: mean {m:.4g}, std {sd:.3g}")
        else:  # a single atom or identical values: mark the mean
            ax.axvline(m, color=colors[s], linewidth=2.0, linestyle="--", gid=f"fit-{s}",
                       label=f"{s} fit: mean {m:.4g} (std 0)")
    ax.set_xlabel("integrated intensity per atom (arb. units)")
    ax.set_ylabel("number of atoms")
    ax.set_title(f"Atom intensities by assigned species ({I.size} atoms)")
    ax.legend(fontsize=8, frameon=False)
    ax.set_ylim(bottom=0)
    return fig


def convergence_figure(errors, rfree=None):
    """Fourier error (and R-free) of the reconstruction per iteration.

    Parameters
    ----------
    errors : (n_iter,) array
        Fourier R-factor per iteration (dimensionless).
    rfree : (m,) array, optional
        R-free per iteration (on the held-out Fourier points).

    Returns
    -------
    matplotlib.figure.Figure
        Curves against the iteration number (from 1); the y axis is logarithmic when every value
        is positive.
    """
    e = _vector(errors, "errors")
    r = None if rfree is None else _vector(rfree, "rfree")
    fig = _new_figure(6.5, 4.0)
    ax = fig.subplots()
    ax.plot(np.arange(1, e.size + 1), e, color="tab:blue", marker="." if e.size < 40 else None,
            label=f"Fourier R (final {e[-1]:.4g})", gid="errors")
    if r is not None:
        ax.plot(np.arange(1, r.size + 1), r, color="tab:red", linestyle="--", marker="." if r.size < 40 else None,
                label=f"R-free (final {r[-1]:.4g})", gid="rfree")
    if (e > 0).all() and (r is None or (r > 0).all()):
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("iteration")
    ax.set_ylabel("error (dimensionless)")
    ax.set_title("Reconstruction convergence")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False)
    return fig


def _fsc_input(fsc):
    if not isinstance(fsc, (tuple, list)) or len(fsc) not in (2, 3):
        raise TypeError("fsc: expected (freq in 1/Å, corr) or (freq, corr, resolution) as returned by "
                        f"aetcore.quality.metrics.half_set_fsc, got {type(fsc).__name__}")
    f = _vector(fsc[0], "fsc: freq")
    c = _vector(fsc[1], "fsc: corr", n=f.size)
    if f.size < 2 or f[0] < 0 or np.any(np.diff(f) <= 0):
        raise ValueError("fsc: freq: expected at least 2 non-negative, strictly increasing frequencies in 1/Å")
    return f, c, (fsc[2] if len(fsc) == 3 else None)


def _resolution(value, name="resolution"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a resolution in Å (a number), got {type(value).__name__}")
    value = float(value)
    if np.isnan(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive resolution in Å (inf allowed), got {value}")
    return value


def fsc_figure(freq, corr, resolution=None, *, threshold=0.143):
    """Half-set Fourier shell correlation with the threshold and the resolution marked.

    Parameters
    ----------
    freq : (n,) array
        Spatial frequency of each shell, 1/Å, increasing.
    corr : (n,) array
        Correlation per shell.
    resolution : float, optional
        Resolution to mark, Å (a vertical line at ``1 / resolution`` with gid ``"resolution"``).
        Default: :func:`aetcore.quality.metrics.resolution_from_fsc` at `threshold`. ``inf`` (no
        correlation at any frequency) marks nothing but says so in the title.
    threshold : float
        FSC criterion, in (0, 1); 0.143 for half sets.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..quality.metrics import resolution_from_fsc

    f, c, _ = _fsc_input((freq, corr))
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ValueError(f"threshold: expected a number in (0, 1), got {threshold!r}")
    res = _resolution(resolution)
    if res is None:
        res = resolution_from_fsc(f, c, threshold)
    fig = _new_figure(6.5, 4.0)
    ax = fig.subplots()
    ax.plot(f, c, color="tab:blue", marker="." if f.size < 60 else None, label="half-set FSC", gid="fsc")
    ax.axhline(threshold, color="gray", linestyle="--", linewidth=1.0, label=f"threshold {threshold:g}",
               gid="threshold")
    ax.axhline(0.0, color="black", linewidth=0.5)
    if np.isfinite(res):
        ax.axvline(1.0 / res, color="tab:red", linewidth=1.5, gid="resolution",
                   label=f"resolution {res:.2f} Å ({1.0 / res:.3f} Å⁻¹)")
        ax.set_title(f"Half-set FSC: resolution {res:.2f} Å at FSC = {threshold:g}")
    else:
        ax.set_title(f"Half-set FSC: below {threshold:g} at every frequency (no resolution)")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("Fourier shell correlation")
    ax.set_xlim(0, f[-1] * 1.02)
    ax.set_ylim(min(-0.1, float(c.min()) - 0.05), 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, loc="lower left")
    return fig


def atoms_figure(positions, symbols, species=None):
    """Atom positions coloured by species: a 3D scatter and the three 2D projections.

    Parameters
    ----------
    positions : (n_atoms, 3) array
        ``(x, y, z)`` in Å, object frame.
    symbols : (n_atoms,) sequence of str
        Species of each atom.
    species : sequence of str, optional
        Species order (colours follow it, as in :func:`intensity_histogram_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        Top left the 3D scatter; then the xy, xz and yz projections as seen by a viewer on the
        side the third axis points to out of the page (+z, −y, +x), the nearest atom drawn on top;
        equal aspect, axes in Å.
    """
    import mpl_toolkits.mplot3d  # noqa: F401  (registers the 3d projection)

    pos = as_positions(positions)
    if pos.shape[0] == 0:
        raise ValueError("positions: expected at least one atom, got none")
    sym = _symbols(symbols, pos.shape[0])
    names = [s for s in _species_order(sym, _species_list(species)) if s in set(sym)]
    colors = _species_colors(_species_order(sym, _species_list(species)))
    sym_arr = np.asarray(sym, dtype=object)
    size = float(np.clip(4000.0 / pos.shape[0], 3.0, 40.0))
    fig = _new_figure(10.0, 9.0)
    ax3 = fig.add_subplot(2, 2, 1, projection="3d")
    views = [(fig.add_subplot(2, 2, 2), 0, 1), (fig.add_subplot(2, 2, 3), 0, 2), (fig.add_subplot(2, 2, 4), 1, 2)]
    axis_names = "xyz"
    for s in names:
        m = sym_arr == s
        ax3.scatter(pos[m, 0], pos[m, 1], pos[m, 2], s=size, color=colors[s], depthshade=True,
                    label=f"{s} ({int(m.sum())})", gid=f"atoms-{s}")
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1.0) * 1.05
    for k, setter in enumerate((ax3.set_xlim, ax3.set_ylim, ax3.set_zlim)):
        setter(centre[k] - half, centre[k] + half)
    try:
        ax3.set_box_aspect((1, 1, 1))
    except AttributeError:  # pragma: no cover - old matplotlib
        pass
    ax3.set_xlabel("x (Å)")
    ax3.set_ylabel("y (Å)")
    ax3.set_zlabel("z (Å)")
    ax3.set_title(f"{pos.shape[0]} atoms")
    ax3.legend(loc="upper left", fontsize=8, frameon=False, markerscale=max(1.0, 20.0 / size) ** 0.5)
    rgba = np.array([colors[s] for s in sym])
    for ax, i, j in views:
        k = 3 - i - j
        toward = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0  # i x j = toward * k
        top = np.argsort(toward * pos[:, k], kind="stable")  # drawn last = nearest to the viewer
        ax.scatter(pos[top, i], pos[top, j], s=size * 0.8, c=rgba[top], edgecolors="white", linewidths=0.3)
        ax.set_xlabel(f"{axis_names[i]} (Å)")
        ax.set_ylabel(f"{axis_names[j]} (Å)")
        ax.set_xlim(centre[i] - half, centre[i] + half)
        ax.set_ylim(centre[j] - half, centre[j] + half)
        ax.set_aspect("equal")
        k = 3 - i - j
        side = "+" if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else "−"
        ax.set_title(f"{axis_names[i]}{axis_names[j]} projection, seen from {side}{axis_names[k]} "
                     "(nearest atom on top)", fontsize=10)
    fig.suptitle("Atomic model coloured by species")
    return fig


def areas_map_figure(numbers, offsets, halves, pixel_size, values, *, value_label="", positions=None):
    """The areas of a sub-area AET run in the dim1-dim2 (x-y) plane of the full volume.

    Every point is coloured by the value of the area that owns it (the area in which it lies deepest,
    :func:`aetcore.steps.stitch.owner_score`: the tiling the stitched atoms follow); each area's box
    is outlined and numbered at its centre; the stitched atoms are drawn as dots.

    Parameters
    ----------
    numbers : (m,) ints
        The areas' numbers (rows of the crop table).
    offsets : (m, 3) array
        Each area's centre in the full-volume frame, Å (:func:`aetcore.steps.stitch.area_offsets`).
    halves : (m, 3) ints
        Each area's ``CropHalf``, voxels.
    pixel_size : float
        Å per voxel.
    values : (m,) array
        The value each area is coloured by (NaN: grey), e.g. R1 or its atoms.
    value_label : str
        The colour bar's label.
    positions : (n, 3) array, optional
        The stitched atoms, Å, full-volume frame.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Rectangle

    from ..steps.stitch import owner_score
    p = positive(pixel_size, "pixel_size")
    num = np.asarray(numbers, np.int64).ravel()
    off = real_array(offsets, "offsets", 2, "(areas, 3) in Å").astype(np.float64)
    half = np.asarray(halves, np.float64)
    val = np.asarray(values, np.float64).ravel()
    m = num.shape[0]
    if off.shape != (m, 3) or half.shape != (m, 3) or val.shape != (m,):
        raise ValueError(f"offsets, halves, values: expected ({m}, 3), ({m}, 3) and ({m},) for {m} areas, "
                         f"got {off.shape}, {half.shape}, {val.shape}")
    ext = (half[:, :2] + 0.5) * p
    lo = (off[:, :2] - ext).min(axis=0)
    hi = (off[:, :2] + ext).max(axis=0)
    step = max(p, float((hi - lo).max()) / 600.0)
    gx = np.arange(lo[0] + step / 2, hi[0], step)
    gy = np.arange(lo[1] + step / 2, hi[1], step)
    X, Y = np.meshgrid(gx, gy)
    pts = np.column_stack([X.ravel(), Y.ravel(), np.zeros(X.size)])
    score = owner_score(pts, off, half, p)
    owner = np.argmax(score, axis=1)
    covered = score[np.arange(len(owner)), owner] > 0
    img = np.where(covered, val[owner], np.nan).reshape(X.shape)
    span = hi - lo
    aspect = float(span[0] / max(span[1], 1e-9))
    width = float(np.clip(3.0 + 3.0 * aspect, 6.0, 14.0))
    fig = _new_figure(width, float(np.clip((width - 1.5) / aspect + 1.5, 3.0, 9.0)))
    ax = fig.add_subplot(1, 1, 1)
    finite = val[np.isfinite(val)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    import matplotlib
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(img, origin="lower", extent=[lo[0], hi[0], lo[1], hi[1]], cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest", aspect="equal")
    for k in range(m):
        ax.add_patch(Rectangle(tuple(off[k, :2] - ext[k]), 2 * ext[k, 0], 2 * ext[k, 1], fill=False,
                               edgecolor="white", linewidth=0.6, alpha=0.8))
        ax.text(off[k, 0], off[k, 1], str(num[k]), ha="center", va="center", fontsize=8, color="black",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.75, "linewidth": 0})
    if positions is not None:
        pos = as_positions(positions)
        if pos.shape[0]:
            ax.scatter(pos[:, 0], pos[:, 1], s=float(np.clip(3000.0 / pos.shape[0], 1.5, 12.0)), c="black",
                       alpha=0.6, linewidths=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x = dim1 (Å, full volume)")
    ax.set_ylabel("y = dim2 (Å)")
    fig.colorbar(im, ax=ax, shrink=0.8, label=value_label)
    ax.set_title(f"{m} areas: each point coloured by the area that owns it")
    return fig


def shifts_figure(shifts, angles=None, *, rotation=None, pixel_size=None):
    """Alignment shifts per image.

    Parameters
    ----------
    shifts : (n_images, 2) array
        ``(dy, dx)`` in pixels applied to each image (``scipy.ndimage.shift`` convention).
    angles : (n_images,) or (n_images, 3) array, optional
        Tilt angles or ZYZ Euler angles in degrees; the x axis is then the tilt angle ``theta``
        instead of the image index.
    rotation : float, optional
        Fitted tilt-axis rotation in degrees (shown in the title).
    pixel_size : float, optional
        Å per pixel; adds a right-hand axis in Å.

    Returns
    -------
    matplotlib.figure.Figure
    """
    sh = real_array(shifts, "shifts", 2, "(n_images, 2) of (dy, dx) in pixels").astype(np.float64)
    if sh.shape[1] != 2:
        raise ValueError(f"shifts: expected shape (n_images, 2) of (dy, dx) in pixels, got {sh.shape}")
    n = sh.shape[0]
    if angles is not None:
        x = as_angles(angles, n, "angles")[:, 1]
        xlabel = "tilt angle θ (°)"
    else:
        x = np.arange(n, dtype=np.float64)
        xlabel = "image index"
    rot = None
    if rotation is not None:
        if isinstance(rotation, bool) or not isinstance(rotation, (int, float, np.floating, np.integer)) \
                or not np.isfinite(rotation):
            raise ValueError(f"rotation: expected a finite angle in degrees, got {rotation!r}")
        rot = float(rotation)
    ps = None if pixel_size is None else positive(pixel_size, "pixel_size")
    order = np.argsort(x, kind="stable")
    fig = _new_figure(7.0, 4.0)
    ax = fig.subplots()
    style = {"marker": "o", "markersize": 3 if n > 40 else 4, "linewidth": 1.0}
    ax.plot(x[order], sh[order, 0], color="tab:green", label="dy (rows)", gid="dy", **style)
    ax.plot(x[order], sh[order, 1], color="tab:purple", label="dx (columns)", gid="dx", **style)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("shift (px)")
    if ps is not None:
        sec = ax.secondary_yaxis("right", functions=(lambda v: v * ps, lambda v: v / ps))
        sec.set_ylabel("shift (Å)")
    title = f"Alignment shifts of {n} images"
    if rot is not None:
        title += f"; tilt-axis rotation {rot:.2f}°"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    return fig


def _fmt(v, digits=4) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    try:
        v = float(v)
    except (TypeError, ValueError):
        return _html.escape(str(v))
    if not np.isfinite(v):
        return "∞" if v > 0 else ("–" if np.isnan(v) else "−∞")
    return f"{v:.{digits}g}"


def _table(header, rows) -> str:
    head = "".join(f"<th>{_html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_html(summary=None, *, stats=None, resolution=None, rotation=None) -> str:
    """HTML tables summarising a run: atoms per species, quality figures, time per step.

    Parameters
    ----------
    summary : dict, optional
        The dict ``aet run`` writes to ``summary.json`` (:func:`aetcore.app.folder.run`); used keys:
        ``atoms``, ``counts``, ``r1_before``, ``r1_after``, ``r1_holdout`` and ``holdout`` (``folds``,
        ``r1_fit``), ``non_atoms``, ``fits_left_volume``, ``reconstruction``
        (``iterations_run``, ``fourier_r``, ``rfree``), ``alignment`` (``rotation_deg``),
        ``timings_s``, ``input`` (``pixel_size``, ``n_angles``, ``image_shape``). Missing keys
        are left out.
    stats : dict, optional
        :func:`species_intensity_stats` (count, mean and std of the intensity per species).
    resolution : float, optional
        Half-set FSC resolution, Å.
    rotation : float, optional
        Tilt-axis rotation, degrees (if not in `summary`).

    Returns
    -------
    str
        HTML (values escaped).
    """
    if summary is not None and not isinstance(summary, dict):
        raise TypeError(f"summary: expected a dict (as written to summary.json), got {type(summary).__name__}")
    s = summary or {}
    parts = []
    counts = s.get("counts") if isinstance(s.get("counts"), dict) else None
    if stats or counts:
        names = list(stats) if stats else list(counts)
        if counts:
            names += [k for k in counts if k not in names]
        total = sum((stats[k]["n"] if stats and k in stats else counts.get(k, 0)) for k in names) or 1
        rows = []
        for k in names:
            n = stats[k]["n"] if stats and k in stats else counts.get(k, 0)
            st = stats.get(k) if stats else None
            rows.append([_html.escape(k), _fmt(int(n)), f"{100.0 * n / total:.1f} %",
                         _fmt(st["mean"]) if st else "–", _fmt(st["std"], 3) if st else "–"])
        parts.append("<h3>Atoms per species</h3>" + _table(
            ["species", "atoms", "fraction", "mean intensity", "std intensity"], rows))
    quality = []
    if "atoms" in s:
        quality.append(["atoms", _fmt(s["atoms"])])
    if s.get("non_atoms") is not None:
        quality.append(["non-atoms rejected", _fmt(s["non_atoms"])])
    if s.get("fits_left_volume"):
        quality.append(["fits that left the volume (kept at their voxel)", _fmt(s["fits_left_volume"])])
    if "r1_before" in s or "r1_after" in s:
        quality.append(["R1 before refinement", _fmt(s.get("r1_before"))])
        quality.append(["R1 after refinement", _fmt(s.get("r1_after"))])
    if s.get("r1_holdout") is not None:
        h = s.get("holdout") if isinstance(s.get("holdout"), dict) else {}
        k = f"{int(h['folds'])}-fold " if h.get("folds") else "k-fold "
        if h.get("r1_fit") is not None:
            quality.append([f"R1 of the {k}fits (training images)", _fmt(h["r1_fit"])])
        quality.append([f"R1 on held-out images ({k}validation)", _fmt(s["r1_holdout"])])
    rec = s.get("reconstruction") if isinstance(s.get("reconstruction"), dict) else {}
    if "iterations_run" in rec:
        quality.append(["reconstruction iterations", _fmt(rec["iterations_run"])])
    if "fourier_r" in rec:
        quality.append(["final Fourier R", _fmt(rec["fourier_r"])])
    if rec.get("rfree") is not None:
        quality.append(["final R-free", _fmt(rec["rfree"])])
    if resolution is not None:
        quality.append(["half-set FSC resolution (0.143)", f"{_fmt(resolution, 3)} Å"])
    al = s.get("alignment") if isinstance(s.get("alignment"), dict) else {}
    rot = al.get("rotation_deg", rotation)
    if rot is not None:
        quality.append(["tilt-axis rotation", f"{_fmt(rot, 3)}°"])
    inp = s.get("input") if isinstance(s.get("input"), dict) else {}
    if inp.get("pixel_size") is not None:
        quality.append(["pixel size", f"{_fmt(inp['pixel_size'])} Å"])
    if inp.get("n_angles") is not None:
        shape = inp.get("image_shape")
        quality.append(["images", _fmt(inp["n_angles"]) + (f" of {int(shape[0])}×{int(shape[1])} px" if shape else "")])
    if quality:
        parts.append("<h3>Quality</h3>" + _table(["quantity", "value"], quality))
    timings = s.get("timings_s") if isinstance(s.get("timings_s"), dict) else {}
    if timings:
        rows = [[_html.escape(str(k)), f"{_fmt(v, 3)} s"] for k, v in timings.items()]
        parts.append("<h3>Time per step</h3>" + _table(["step", "wall time"], rows))
    return "\n".join(parts) if parts else "<p>No summary available.</p>"
