"""Sub-area AET: the atoms and volumes of overlapping areas of one object, stitched into one model and
one volume in the frame of the full volume.

Geometry (the source's crop table, e.g. ``alignPara.mat`` of Yuan et al. 2022): area ``k`` is the
1-based voxel range ``centre - half ... centre + half`` along ``(dim1, dim2, dim3)`` of a full volume
of shape ``volume_shape`` (voxels, ``(dim1, dim2, dim3)``). Inside aetcore ``x`` runs along
``dim1``, ``y`` along ``dim2``, ``z`` along ``dim3`` (docs/CONVENTIONS.md). An area's own results have
their origin at index ``n // 2`` of its own box; that voxel is the 0-based full-volume index
``centre - 1``. The full-volume frame has its origin at the 0-based index ``volume_shape // 2``, so
an area's positions move into it by :func:`area_offsets`:
``(centre - 1 - volume_shape // 2) · pixel_size`` Å. For the Ta film (401 × 351 × 341) this is the
README's ``full-volume voxel (1-based) = model / 0.3216 + [201, 176, 171]``.

Atoms (:func:`stitch_atoms`): an atom traced by several areas is one atom. Each area's atoms are
matched one to one with those of every overlapping area within ``merge_distance``
(:func:`aetcore.quality.scoring.match_atoms`, no translation); the matched atoms form one group. A
group is kept only if its *owner* traced it: the area, among those whose box holds the group's mean
position laterally, in which that position lies deepest (:func:`owner_score`: farthest from the
box's lateral edges, where a reconstruction is worst). The kept atom takes the owner's species and per-atom values, and
the mean of its group's positions weighted by :func:`edge_weights` (each area's weight falling
toward its edges, as for the volume). An unmatched atom in an overlap is kept only if its own area
owns it. Without the matching the same atom traced by two areas near their ownership boundary would
be kept twice (each copy on its own side) or lost (each copy on the other side).

Volumes (:func:`stitch_volumes`): the weighted mean of the areas' volumes on the covered region of
the full volume, the weight of an area zero in its outer ``edge_trim`` voxels (the source trims 4
pixels of each overlap) and rising linearly to 1 over the next ``taper`` voxels, along every axis;
where only trimmed voxels cover a point (the covered region's own border) their plain mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util.validate import as_positions, at_least, positive

__all__ = ["MERGE_DISTANCE", "EDGE_TRIM", "TAPER", "area_offsets", "check_crop_table", "owner_score",
           "edge_weights", "stitch_atoms", "StitchedAtoms", "stitch_volumes"]

#: Å. Two atoms of different areas closer than this are one atom. Half the tracing's minimum distance
#: between atoms ([trace] min_distance, 2 Å), so an atom of one area is within it of at most one atom
#: of another. Measured on the Ta film (the source's RESIRE volumes of areas 1 and 5 traced by aetcore,
#: 433 atoms in their overlap): the nearest atom of the other area is within 0.3 Å for 63 % of them,
#: 0.3-1.0 Å for 18 %, 1.0-1.5 Å for 5 % (then the film's own atom spacing, >= 2 Å); the stitched
#: model scores recall 95.2 %, precision 87.4 %, 27.1 pm against the published one (bench/README.md).
MERGE_DISTANCE = 1.0
#: voxels at each edge of an area whose volume weight is zero where another area covers them (the
#: source's stitching trims 4 pixels of each overlap)
EDGE_TRIM = 4
#: voxels over which an area's volume weight rises linearly from the trimmed edge to 1
TAPER = 8


def check_crop_table(centres, halves, volume_shape, name: str = "crop table") -> tuple:
    """Check a crop table against the full volume; return ``(centres, halves, volume_shape)`` as int
    arrays.

    Parameters
    ----------
    centres, halves : (m, 3) int arrays
        ``CropCen`` (1-based voxel index of each area's centre) and ``CropHalf`` (voxels), columns
        ``(dim1, dim2, dim3)``.
    volume_shape : (3,) ints
        The full volume, voxels along ``(dim1, dim2, dim3)``.
    name : str
        What to call the table in errors.
    """
    shape = np.asarray(volume_shape)
    if shape.shape != (3,) or not np.issubdtype(shape.dtype, np.integer) or np.any(shape < 1):
        raise ValueError(f"volume_shape: expected three positive integers (dim1, dim2, dim3), got {volume_shape!r}")
    c, h = np.asarray(centres), np.asarray(halves)
    for a, what in ((c, "CropCen"), (h, "CropHalf")):
        if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
            raise ValueError(f"{name}: {what}: expected an (areas, 3) array, got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating)
                                                        and np.all(np.isfinite(a)) and np.all(a == np.round(a)))):
            raise ValueError(f"{name}: {what}: expected integer voxel indices, got dtype {a.dtype}")
    if c.shape != h.shape:
        raise ValueError(f"{name}: CropCen {c.shape} and CropHalf {h.shape} have different shapes")
    return c.astype(np.int64), h.astype(np.int64), shape.astype(np.int64)


def area_offsets(centres, volume_shape, pixel_size: float) -> np.ndarray:
    """Å added to an area's positions (origin at index ``n // 2`` of its box) to put them in the
    full-volume frame (origin at index ``volume_shape // 2``).

    Parameters
    ----------
    centres : (m, 3) ints
        1-based full-volume index of each area's centre voxel, ``(dim1, dim2, dim3)`` = ``(x, y, z)``.
    volume_shape : (3,) ints
        The full volume, voxels ``(dim1, dim2, dim3)``.
    pixel_size : float
        Å per voxel.

    Returns
    -------
    (m, 3) float array
        ``(centres - 1 - volume_shape // 2) · pixel_size``, Å, ``(x, y, z)``.
    """
    c = np.atleast_2d(np.asarray(centres, np.int64))
    return (c - 1 - np.asarray(volume_shape, np.int64) // 2) * positive(pixel_size, "pixel_size")


def owner_score(points, offsets, halves, pixel_size: float) -> np.ndarray:
    """How far inside each area's box each point lies laterally: ``(n_points, m)``; the owner of a
    point is the area of largest score (the first such area on a tie).

    With ``d_x``, ``d_y`` the distances (Å) from the point to the nearer x face and the nearer y face of
    the area's box (faces half a voxel beyond its outer voxel centres; negative outside), the score is
    ``d_x · d_y`` (Å²) inside the box and ``min(d_x, d_y)`` (negative) outside it. The product, unlike
    the distance to the nearest face alone, does not tie between two areas side by side near the
    edge they share: their boundary is the mid-line between their centres.

    Parameters
    ----------
    points : (n, 3) array
        Positions in the full-volume frame, Å.
    offsets : (m, 3) array
        :func:`area_offsets` of the areas.
    halves : (m, 3) ints
        ``CropHalf`` of the areas, voxels.
    pixel_size : float
        Å per voxel.
    """
    p = np.asarray(points, np.float64)[:, None, :2]
    extent = (np.asarray(halves, np.float64)[None, :, :2] + 0.5) * pixel_size
    d = extent - np.abs(p - np.asarray(offsets, np.float64)[None, :, :2])
    inside = np.all(d > 0, axis=2)
    return np.where(inside, d[..., 0] * d[..., 1], np.min(d, axis=2))


def _ramp(d, edge_trim: float, taper: float):
    """The weight at distance d (voxels from the outermost voxel) from an edge."""
    return np.clip((np.asarray(d, np.float64) - edge_trim + 1.0) / (taper + 1.0), 0.0, 1.0)


def edge_weights(n: int, edge_trim: int = EDGE_TRIM, taper: int = TAPER) -> np.ndarray:
    """An area's stitching weight along one axis of ``n`` voxels: 0 on the ``edge_trim`` outermost
    voxels at each end, rising linearly to 1 over the next ``taper`` voxels, 1 inside."""
    i = np.arange(n)
    return _ramp(np.minimum(i, n - 1 - i), edge_trim, taper)


@dataclass(frozen=True)
class StitchedAtoms:
    """The outcome of :func:`stitch_atoms`.

    Attributes
    ----------
    positions : (n, 3) float array
        The stitched atoms in the full-volume frame, Å.
    area : (n,) int array
        Index (into the lists given) of each atom's owner area.
    index : (n,) int array
        The atom's index in its owner area's list.
    seen : (n,) int array
        How many areas traced the atom (the size of its group).
    n_traced : int
        Atoms of every area together.
    n_groups : int
        Groups of atoms matched across areas (an unmatched atom is a group of one).
    n_merged : int
        Kept atoms traced by more than one area.
    n_not_owned : int
        Groups dropped because their owner area did not trace them.
    pair_distances : (n_pairs,) float array
        Distance of every matched pair of atoms of two areas, Å (how far two areas' measurements of
        one atom differ).
    """
    positions: np.ndarray
    area: np.ndarray
    index: np.ndarray
    seen: np.ndarray
    n_traced: int
    n_groups: int
    n_merged: int
    n_not_owned: int
    pair_distances: np.ndarray

    def __len__(self):
        return int(self.positions.shape[0])

    def as_dict(self) -> dict:
        """The counts and the pair distances' median, 95th percentile and maximum (pm), for a summary."""
        d = self.pair_distances * 100.0
        q = (lambda v: float(np.percentile(d, v))) if d.size else (lambda v: None)  # noqa: E731
        return {"atoms": len(self), "traced": self.n_traced, "groups": self.n_groups, "merged": self.n_merged,
                "dropped_not_owned": self.n_not_owned, "pairs": int(d.size),
                "pair_distance_pm": {"median": q(50), "p95": q(95), "max": None if not d.size else float(d.max())}}


class _Groups:
    """Union-find over atom indices."""

    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i, j):
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def stitch_atoms(positions, centres, halves, volume_shape, pixel_size: float, *,
                 merge_distance: float = MERGE_DISTANCE, edge_trim: int = EDGE_TRIM,
                 taper: int = TAPER) -> StitchedAtoms:
    """The atoms of overlapping areas as one model in the full-volume frame, each atom once.

    Parameters
    ----------
    positions : sequence of (n_k, 3) arrays
        Each area's atoms in its own frame (origin at index ``n // 2`` of its box), Å, ``(x, y, z)``.
    centres, halves : (m, 3) ints
        The areas' rows of the crop table (``CropCen``, 1-based, and ``CropHalf``, voxels),
        ``(dim1, dim2, dim3)``, one per entry of `positions`.
    volume_shape : (3,) ints
        The full volume, voxels ``(dim1, dim2, dim3)``.
    pixel_size : float
        Å per voxel.
    merge_distance : float
        Atoms of two areas closer than this are one atom, Å (:data:`MERGE_DISTANCE`).
    edge_trim, taper : int
        Voxels; the lateral weights of a merged atom's positions (:func:`edge_weights`).

    Returns
    -------
    StitchedAtoms
        See the module docstring for the rule.
    """
    from ..quality.scoring import match_atoms
    centres, halves, volume_shape = check_crop_table(centres, halves, volume_shape, "centres/halves")
    pixel_size = positive(pixel_size, "pixel_size")
    merge_distance = positive(merge_distance, "merge_distance")
    edge_trim = at_least(edge_trim, 0, "edge_trim", integer=True)
    taper = at_least(taper, 0, "taper", integer=True)
    if isinstance(positions, np.ndarray) or len(positions) != centres.shape[0]:
        raise ValueError(f"positions: expected one (n, 3) array per area ({centres.shape[0]}), "
                         f"got {type(positions).__name__} of {len(positions)}")
    local = [as_positions(p, f"positions[{k}]").astype(np.float64) for k, p in enumerate(positions)]
    offsets = area_offsets(centres, volume_shape, pixel_size)
    full = np.concatenate([p + offsets[k] for k, p in enumerate(local)]) if local else np.empty((0, 3))
    area = np.concatenate([np.full(len(p), k) for k, p in enumerate(local)]).astype(np.int64)
    index = np.concatenate([np.arange(len(p)) for p in local]).astype(np.int64)
    start = np.concatenate([[0], np.cumsum([len(p) for p in local])]).astype(np.int64)
    n = full.shape[0]
    m = len(local)

    # 1. one-to-one matches between every two overlapping areas, within merge_distance
    groups = _Groups(n)
    distances = []
    reach = (halves[:, :2] + 0.5) * pixel_size
    for a in range(m):
        for b in range(a + 1, m):
            gap = np.abs(offsets[a, :2] - offsets[b, :2]) - reach[a] - reach[b]
            if np.any(gap > merge_distance) or not len(local[a]) or not len(local[b]):
                continue
            pa, pb = full[start[a]:start[a + 1]], full[start[b]:start[b + 1]]
            # only the atoms in the other area's box (grown by the merge distance) can pair
            ia = np.flatnonzero(np.all(np.abs(pa[:, :2] - offsets[b, :2]) <= reach[b] + merge_distance, axis=1))
            ib = np.flatnonzero(np.all(np.abs(pb[:, :2] - offsets[a, :2]) <= reach[a] + merge_distance, axis=1))
            if not ia.size or not ib.size:
                continue
            pairs = match_atoms(pa[ia], None, pb[ib], None, max_distance=merge_distance, register=False).pairs
            for i, j in pairs:
                gi, gj = start[a] + ia[i], start[b] + ib[j]
                groups.union(gi, gj)
                distances.append(float(np.linalg.norm(full[gi] - full[gj])))

    # 2. each group judged once, by the owner of its mean position
    roots = np.array([groups.find(i) for i in range(n)], np.int64)
    order = np.argsort(roots, kind="stable")
    bounds = np.flatnonzero(np.diff(roots[order])) + 1
    members = np.split(order, bounds) if n else []
    # a chain that holds two atoms of one area (possible only for atoms < 2 merge distances apart) is
    # not one atom: its members are judged one by one
    split = []
    for g in members:
        if len(np.unique(area[g])) == len(g):
            split.append(g)
        else:
            split.extend(np.array([i]) for i in g)
    kept_pos, kept_area, kept_index, kept_seen = [], [], [], []
    not_owned = 0
    for g in split:
        mean = full[g].mean(axis=0)
        owner = int(np.argmax(owner_score(mean[None], offsets, halves, pixel_size)[0]))
        if owner not in area[g]:
            not_owned += 1
            continue
        pos = full[g[area[g] == owner][0]]
        if len(g) > 1:
            local_idx = full[g] - offsets[area[g]]           # Å in each area's frame
            d_vox = (halves[area[g], :2] + 0.5) - np.abs(local_idx[:, :2]) / pixel_size - 0.5
            w = np.prod(_ramp(d_vox, edge_trim, taper), axis=1)
            pos = (w[:, None] * full[g]).sum(axis=0) / w.sum() if w.sum() > 0 else pos
        own = g[area[g] == owner][0]
        kept_pos.append(pos)
        kept_area.append(owner)
        kept_index.append(index[own])
        kept_seen.append(len(g))
    seen = np.asarray(kept_seen, np.int64)
    return StitchedAtoms(positions=np.asarray(kept_pos, np.float64).reshape(-1, 3),
                         area=np.asarray(kept_area, np.int64), index=np.asarray(kept_index, np.int64),
                         seen=seen, n_traced=int(n), n_groups=len(split), n_merged=int(np.sum(seen > 1)),
                         n_not_owned=not_owned, pair_distances=np.asarray(distances, np.float64))


def stitch_volumes(volumes, centres, volume_shape, *, edge_trim: int = EDGE_TRIM, taper: int = TAPER):
    """The areas' volumes as one volume on the region of the full volume they cover.

    Parameters
    ----------
    volumes : sequence of (nz, ny, nx) arrays
        Each area's volume, ``vol[z, y, x]`` with ``x`` along ``dim1``; its voxel ``n // 2`` along
        each axis is the area's centre. Given as callables returning the array, the volumes are
        read one at a time, twice (once for the covered region, once to add them), so the memory is
        one area's volume plus four float32 arrays of the covered region.
    centres : (m, 3) ints
        ``CropCen`` of each area (1-based, ``(dim1, dim2, dim3)``).
    volume_shape : (3,) ints
        The full volume, voxels ``(dim1, dim2, dim3)``.
    edge_trim, taper : int
        Voxels; see :func:`edge_weights`.

    Returns
    -------
    volume : (nz, ny, nx) float32 array
        The weighted mean on the covered region (the bounding box of the areas, clipped to the full
        volume); 0 where no area covers.
    start : (3,) int array
        0-based full-volume index ``(dim1, dim2, dim3)`` of ``volume[0, 0, 0]``.
    """
    c = np.atleast_2d(np.asarray(centres, np.int64))
    shape_full = np.asarray(volume_shape, np.int64)
    edge_trim = at_least(edge_trim, 0, "edge_trim", integer=True)
    taper = at_least(taper, 0, "taper", integer=True)
    if len(volumes) != c.shape[0]:
        raise ValueError(f"volumes: expected one volume per area ({c.shape[0]}), got {len(volumes)}")
    get = [v if callable(v) else (lambda v=v: v) for v in volumes]
    # boxes: the shapes are needed first; read each volume's shape, keep nothing
    boxes = []
    for k, g in enumerate(get):
        v = g()
        if not isinstance(v, np.ndarray) or v.ndim != 3:
            raise ValueError(f"volumes[{k}]: expected a (nz, ny, nx) array, got {getattr(v, 'shape', type(v))}")
        n = np.array(v.shape[::-1], np.int64)               # (nx, ny, nz) = (dim1, dim2, dim3)
        lo = c[k] - 1 - n // 2
        boxes.append((lo, n))
        del v
    lo = np.maximum(np.min([b[0] for b in boxes], axis=0), 0)
    hi = np.minimum(np.max([b[0] + b[1] for b in boxes], axis=0), shape_full)
    if np.any(hi <= lo):
        raise ValueError("centres: the areas do not overlap the full volume of volume_shape")
    size = hi - lo
    acc, wsum, plain, count = (np.zeros(size[::-1], np.float32) for _ in range(4))
    for k, g in enumerate(get):
        v = np.asarray(g(), np.float32)
        b_lo, n = boxes[k]
        a = np.maximum(b_lo, lo)
        b = np.minimum(b_lo + n, hi)
        if np.any(b <= a):
            continue
        src = tuple(slice(int(a[i] - b_lo[i]), int(b[i] - b_lo[i])) for i in (2, 1, 0))
        dst = tuple(slice(int(a[i] - lo[i]), int(b[i] - lo[i])) for i in (2, 1, 0))
        wx, wy, wz = (edge_weights(int(n[i]), edge_trim, taper)[src[2 - i]] for i in range(3))
        w = (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)
        part = v[src]
        acc[dst] += w * part
        wsum[dst] += w
        plain[dst] += part
        count[dst] += 1
        del v
    out = np.where(wsum > 0, acc / np.where(wsum > 0, wsum, 1.0),
                   np.where(count > 0, plain / np.maximum(count, 1), 0.0))
    return np.ascontiguousarray(out, np.float32), lo
