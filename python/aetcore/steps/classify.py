"""Species classification of traced atoms (issue "From volume to atoms").

:func:`classify` assigns each atom of a traced model one of the user's species, or the non-atom class:

1. **Integrated intensity.** Each atom's intensity is the sum of the volume, trilinearly interpolated,
   over the points ``c + o`` where ``c`` is the atom's sub-voxel position and ``o`` runs over the
   integer voxel offsets with ``|o| * pixel_size <= radius`` (a sphere of `radius` Å that moves with
   the atom, so the number of samples does not depend on where the atom sits within its voxel).
2. **Initial clustering** of the intensities into ``len(species)`` clusters (k-means, scikit-learn's
   ``KMeans`` if available, else a 1-D Lloyd k-means in NumPy; or a Gaussian mixture). Clusters are
   ordered by mean intensity and given to the species ordered by atomic number: the brightest
   cluster gets the heaviest element (ADF-STEM intensity rises roughly as Z^1.7).
3. **Non-atoms** (with ``non_atom=True``): with ``med`` the median intensity of the lightest
   species' cluster and ``sigma`` its robust spread (1.4826 x median absolute deviation), an atom
   below ``min(0.5 * med, med - 3 * sigma)`` is a non-atom (label -1, symbol ``'X'``, the ASE
   dummy-atom symbol): far below the lightest species both relatively and in units of its noise,
   so a noisy light species is not thinned out. Non-atoms are removed and the clustering of step 2
   is repeated on the rest (twice at most), so a few spurious atoms cannot pull the lightest
   cluster down.
4. **Re-classification** (Xu et al., Nat. Mater. 14, 1099, 2015; Yang et al., Nature 542, 75, 2017):
   each atom's local box — the ``(2 box + 1)^3`` volume samples around its sub-voxel position,
   trilinearly interpolated — is compared with each species' mean box by L2 distance and takes the
   nearest species. The mean box of a species is the mean over all atoms of that species (excluding
   the atom itself), or with ``local=True`` over the atoms of that species within `local_radius` Å
   (excluding itself; the global mean when there is none nearby). Rounds repeat until no atom
   changes, or the number of changes has not fallen below its smallest value for `patience`
   rounds (oscillation), or `max_rounds` rounds. Non-atoms keep their class.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .._util.validate import as_generator, as_positions, as_volume, at_least, flag, positive, species_symbols

__all__ = ["classify", "Classification", "NON_ATOM_SYMBOL", "NON_ATOM_FRACTION", "NON_ATOM_SIGMAS",
           "NOISE_MODE_BIC"]

#: Symbol given to non-atoms (ASE's dummy atom, atomic number 0).
NON_ATOM_SYMBOL = "X"
#: An atom is a non-atom when its intensity is below this fraction of the lightest cluster's median.
NON_ATOM_FRACTION = 0.5
#: ... and also more than this many robust standard deviations below it.
NON_ATOM_SIGMAS = 3.0
#: With one species, a two-Gaussian fit of the intensities must lower the BIC by more than this for
#: its dim mode to be taken as noise peaks (a difference of 10 is "very strong" evidence, Kass & Raftery 1995).
NOISE_MODE_BIC = 10.0

_METHODS = ("kmeans", "gmm")
_CHUNK = 2048  # atoms per gather block (bounds the temporary memory of the trilinear gather)


@dataclass(frozen=True)
class Classification:
    """The outcome of :func:`classify`.

    Attributes
    ----------
    labels : (n,) int64
        Index into `species` (the user's order), -1 for a non-atom.
    symbols : (n,) str array
        Element symbol of each atom; ``'X'`` (:data:`NON_ATOM_SYMBOL`) for a non-atom.
    intensity : (n,) float64
        Integrated intensity (volume units summed over the sphere samples).
    initial_labels : (n,) int64
        Labels after the intensity clustering, before the re-classification.
    changes_per_round : list of int
        Number of atoms that changed species in each re-classification round.
    converged : bool
        The last round changed no atom (True also when there was nothing to re-classify).
    species : tuple of str
        The species, in the user's order.
    mean_boxes : (k, 2b+1, 2b+1, 2b+1) float32
        Global mean local box of each species (user's order) after the last round (NaN for a
        species with no atom).
    threshold : float
        Intensity below which an atom is a non-atom (``-inf`` with ``non_atom=False``).
    radius : float
        Integration radius, Å.
    box : int
        Half-width of the local box, voxels.
    """

    labels: np.ndarray
    symbols: np.ndarray
    intensity: np.ndarray
    initial_labels: np.ndarray
    changes_per_round: list
    converged: bool
    species: tuple
    mean_boxes: np.ndarray
    threshold: float
    radius: float
    box: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict:
        """Number of atoms per symbol (including ``'X'`` when there are non-atoms)."""
        out = {s: int(np.count_nonzero(self.labels == i)) for i, s in enumerate(self.species)}
        nx = int(np.count_nonzero(self.labels < 0))
        if nx:
            out[NON_ATOM_SYMBOL] = nx
        return out


# --------------------------------------------------------------------------------------- sampling

def _offsets_sphere(radius: float, p: float) -> np.ndarray:
    r = radius / p
    h = int(np.floor(r))
    g = np.arange(-h, h + 1)
    o = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    return o[(o ** 2).sum(1) <= r * r + 1e-9].astype(np.float64)


def _offsets_box(b: int) -> np.ndarray:
    g = np.arange(-b, b + 1)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float64)


def _sample(vol: np.ndarray, centres: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Trilinear samples (n, m) float64 of `vol` (zero outside) at ``centres[:, None] + offsets``.

    `centres` and `offsets` are fractional (z, y, x) voxel indices. Vectorised gather by fancy
    indexing; the atoms are processed in blocks only to bound memory.
    """
    pad = int(np.ceil(np.abs(offsets).max())) + 2
    vp = np.pad(vol, pad)
    flat = vp.ravel()
    strides = np.array([vp.shape[1] * vp.shape[2], vp.shape[2], 1], np.int64)
    n, m = centres.shape[0], offsets.shape[0]
    out = np.empty((n, m), np.float64)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.int64)
    for s in range(0, n, _CHUNK):
        pts = centres[s:s + _CHUNK, None, :] + offsets[None, :, :] + pad    # (c, m, 3)
        base = np.floor(pts)
        f = pts - base
        base = base.astype(np.int64)
        acc = np.zeros(pts.shape[:2], np.float64)
        for c in corners:  # 8 corners of the trilinear cell (not a loop over atoms)
            w = np.prod(np.where(c == 1, f, 1.0 - f), axis=-1)
            idx = ((base + c) * strides).sum(-1)
            acc += w * flat[idx]
        out[s:s + _CHUNK] = acc
    return out


# ------------------------------------------------------------------------------------- clustering

def _kmeans_1d_numpy(x: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 10) -> np.ndarray:
    """Small 1-D Lloyd k-means: quantile start plus random restarts; returns labels (0..k-1)."""
    best, best_sse = None, np.inf
    for t in range(n_init):
        c = np.quantile(x, (np.arange(k) + 0.5) / k) if t == 0 else np.sort(rng.choice(x, k, replace=False))
        for _ in range(300):
            lab = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
            new = np.array([x[lab == j].mean() if np.any(lab == j) else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        sse = float(((x - c[lab]) ** 2).sum())
        if sse < best_sse:
            best, best_sse = lab, sse
    return best


def _cluster(x: np.ndarray, k: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """Cluster the 1-D intensities into k groups; label 0 = dimmest cluster, k-1 = brightest."""
    if k == 1:
        return np.zeros(x.shape[0], np.int64)
    state = int(rng.integers(0, 2 ** 31 - 1))
    xs = x.reshape(-1, 1)
    if method == "gmm":
        from sklearn.mixture import GaussianMixture
        lab = GaussianMixture(n_components=k, n_init=3, random_state=state).fit_predict(xs)
    else:
        try:
            from sklearn.cluster import KMeans
        except ImportError:  # pragma: no cover - scikit-learn is optional for k-means
            lab = _kmeans_1d_numpy(x, k, np.random.default_rng(state))
        else:
            lab = KMeans(n_clusters=k, n_init=10, random_state=state).fit_predict(xs)
    lab = np.asarray(lab, np.int64)
    means = np.array([x[lab == j].mean() if np.any(lab == j) else -np.inf for j in range(k)])
    rank = np.empty(k, np.int64)
    rank[np.argsort(means, kind="stable")] = np.arange(k)
    return rank[lab]


def _noise_mode_threshold(x: np.ndarray, rng: np.random.Generator) -> float:
    """With one species: the intensity above which a peak belongs to the bright mode of a bimodal
    intensity distribution, or ``-inf`` when the distribution is not bimodal in that way.

    A two-component Gaussian mixture is fitted to the intensities. Its dim component is a mode of
    noise peaks (vacuum, streaks) when the mixture explains the data better than one Gaussian
    (BIC lower by more than :data:`NOISE_MODE_BIC`) and the dim mean is at most
    :data:`NON_ATOM_FRACTION` of the bright one (dim surface atoms, at 70-90 % of the bulk, do not
    qualify); the threshold is where the bright component's posterior reaches 1/2.
    """
    from sklearn.mixture import GaussianMixture
    if x.size < 20:
        return -np.inf
    xs = x.reshape(-1, 1)
    state = int(rng.integers(0, 2 ** 31 - 1))
    one = GaussianMixture(1, random_state=state).fit(xs)
    two = GaussianMixture(2, n_init=3, random_state=state).fit(xs)
    mu = two.means_.ravel()
    dim, bright = int(np.argmin(mu)), int(np.argmax(mu))
    if not (two.bic(xs) < one.bic(xs) - NOISE_MODE_BIC and mu[dim] <= NON_ATOM_FRACTION * mu[bright]):
        return -np.inf
    grid = np.linspace(mu[dim], mu[bright], 2048)
    post = two.predict_proba(grid.reshape(-1, 1))[:, bright]
    return float(grid[int(np.argmax(post >= 0.5))])


# ------------------------------------------------------------------------------- re-classification

def _distances(B, lab, k, neighbours):
    """Squared L2 distance (n, k) of each box to each species' mean box (self excluded)."""
    n = B.shape[0]
    d = np.full((n, k), np.inf)
    onehot = np.zeros((n, k))
    valid = lab >= 0
    onehot[np.flatnonzero(valid), lab[valid]] = 1.0
    sums = onehot.T @ B                    # (k, m)
    counts = onehot.sum(0)                 # (k,)
    for s in range(k):
        # leave-one-out global mean
        cnt = counts[s] - onehot[:, s]      # (n,)
        tot = sums[s][None, :] - onehot[:, s, None] * B
        if neighbours is not None:
            lc = neighbours @ onehot[:, s]
            ls = neighbours @ (onehot[:, s, None] * B)
            use = lc > 0
            cnt = np.where(use, lc, cnt)
            tot = np.where(use[:, None], ls, tot)
        ok = cnt > 0
        mean = tot[ok] / cnt[ok, None]
        d[ok, s] = ((B[ok] - mean) ** 2).sum(1)
    return d


def classify(volume, positions, species, *, pixel_size, radius=None, box=None, method="kmeans",
             local=False, local_radius=10.0, max_rounds=50, patience=5, non_atom=True,
             seed=None) -> Classification:
    """Classify traced atoms into species (see the module documentation for the method).

    Parameters
    ----------
    volume : (nz, ny, nx) array
        The reconstruction, ``vol[z, y, x]``, origin at ``n // 2``.
    positions : (n, 3) array
        Atom positions ``(x, y, z)`` in Å, object frame (e.g. ``TracedAtoms.positions``); each must
        lie inside the volume. At least ``len(species)`` atoms.
    species : sequence of str
        Distinct element symbols, e.g. ``("Fe", "Pt")``; any order (they are ranked by Z internally),
        labels index into this sequence.
    pixel_size : float
        Å per voxel (keyword-only).
    radius : float, optional
        Integration sphere radius, Å (default 1.0 Å; the centre sample is always used).
    box : int, optional
        Half-width of the local box in voxels (default ``ceil(1.2 Å / pixel_size)``, at least 1).
    method : {"kmeans", "gmm"}
        Initial clustering of the integrated intensities.
    local : bool
        Compare with species means over the neighbours within `local_radius` Å instead of the
        whole particle.
    local_radius : float
        Å, with ``local=True``.
    max_rounds : int
        Largest number of re-classification rounds (0: clustering only).
    patience : int
        Stop when the number of changes has not fallen below its smallest value for this many rounds.
    non_atom : bool
        Detect non-atoms (intensity far below the lightest cluster, see the module documentation).
    seed : None, int or numpy.random.Generator
        Seeds the clustering; the same seed gives the same labels.

    Returns
    -------
    Classification
    """
    vol = as_volume(volume)
    pos = as_positions(positions)
    sp = species_symbols(species)
    p = positive(pixel_size, "pixel_size")
    r = 1.0 if radius is None else positive(radius, "radius")
    if box is None:
        b = max(1, int(np.ceil(1.2 / p - 1e-9)))
    else:
        b = at_least(box, 1, "box", integer=True)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    local = flag(local, "local")
    lr = positive(local_radius, "local_radius")
    rounds = at_least(max_rounds, 0, "max_rounds", integer=True)
    pat = at_least(patience, 1, "patience", integer=True)
    non_atom = flag(non_atom, "non_atom")
    rng = as_generator(seed)
    k = len(sp)
    n = pos.shape[0]
    if n < k:
        raise ValueError(f"positions: expected at least {k} atoms (one per species), got {n}")
    shape = np.array(vol.shape, np.float64)
    centres = pos[:, ::-1] / p + shape // 2          # fractional (z, y, x) indices
    outside = np.any((centres < -0.5) | (centres > shape - 0.5), axis=1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"positions: expected every atom inside the volume (shape {vol.shape}, "
                         f"pixel_size {p} Å), got {int(outside.sum())} outside, e.g. atom {i} at "
                         f"{tuple(np.round(pos[i], 3))} Å")

    from ase.data import atomic_numbers
    by_z = np.argsort([atomic_numbers[s] for s in sp], kind="stable")   # cluster rank -> user index

    # 1. integrated intensities
    intensity = _sample(vol, centres, _offsets_sphere(r, p)).sum(1)

    # 2.-3. clustering with non-atom removal
    keep = np.ones(n, bool)
    threshold = -np.inf
    rank = np.zeros(n, np.int64)
    for _ in range(3 if non_atom else 1):
        if keep.sum() < k:
            raise ValueError(f"positions: only {int(keep.sum())} atoms are brighter than the non-atom "
                             f"threshold, fewer than the {k} species")
        rank[keep] = _cluster(intensity[keep], k, method, rng)
        if not non_atom:
            break
        if k == 1 and not np.isfinite(threshold):
            # one cluster holds atoms and noise peaks alike: split a bimodal distribution first
            threshold = _noise_mode_threshold(intensity, rng)
            if np.isfinite(threshold):
                keep = intensity >= threshold
                continue
        lightest = intensity[keep][rank[keep] == 0]
        med = float(np.median(lightest))
        sigma = 1.4826 * float(np.median(np.abs(lightest - med)))
        threshold = max(threshold, min(NON_ATOM_FRACTION * med, med - NON_ATOM_SIGMAS * sigma))
        new_keep = intensity >= threshold
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    lab = np.where(keep, rank, -1)
    initial = np.where(lab >= 0, by_z[np.maximum(lab, 0)], -1).astype(np.int64)

    # 4. re-classification by local boxes (in Z-rank labels)
    boxes = _sample(vol, centres, _offsets_box(b))
    neighbours = None
    if local and rounds > 0:
        from scipy.spatial import cKDTree
        tree = cKDTree(pos)
        neighbours = tree.sparse_distance_matrix(tree, lr, output_type="coo_matrix").tocsr()
        neighbours.data[:] = 1.0
        neighbours.setdiag(0.0)
        neighbours.eliminate_zeros()   # non-atoms never enter a mean: their one-hot row is zero
    changes: list[int] = []
    converged = True
    best, since = np.inf, 0
    active = np.flatnonzero(keep)
    for _ in range(rounds):
        d = _distances(boxes, lab, k, neighbours)
        new = lab.copy()
        new[active] = np.argmin(d[active], axis=1)
        c = int(np.count_nonzero(new != lab))
        changes.append(c)
        lab = new
        if c == 0:
            converged = True
            break
        converged = False
        if c < best:
            best, since = c, 0
        else:
            since += 1
            if since >= pat:
                break

    labels = np.where(lab >= 0, by_z[np.maximum(lab, 0)], -1).astype(np.int64)
    symbols = np.array([sp[i] if i >= 0 else NON_ATOM_SYMBOL for i in labels], dtype="<U2")
    side = 2 * b + 1
    mean_boxes = np.full((k, side, side, side), np.nan, np.float32)
    for s in range(k):
        sel = labels == s
        if sel.any():
            mean_boxes[s] = boxes[sel].mean(0).reshape(side, side, side)
    return Classification(labels=labels, symbols=symbols, intensity=intensity, initial_labels=initial,
                          changes_per_round=changes, converged=bool(converged), species=sp,
                          mean_boxes=mean_boxes, threshold=threshold, radius=float(r), box=int(b))
