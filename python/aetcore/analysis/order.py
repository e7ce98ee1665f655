"""Chemical order of a binary alloy on an fcc lattice (e.g. FePt): local L1_0 / L1_2 order
parameters, phases, Warren–Cowley short-range order, anti-site and swap defects, anti-phase
boundaries.

Everything works on integer fcc site coordinates ``h`` in units of ``a / 2`` (``h.sum()`` even,
:meth:`aetcore.analysis.lattice.LatticeFit.fcc_indices`), in the crystal frame of the fit, so
"x", "y", "z" below are crystal axes (the fit makes them as close to the object axes as the cubic
symmetry allows).

Sublattices. The fcc lattice is four interpenetrating simple-cubic sublattices, told apart by the
parities of ``h``: ``(0,0,0)``, ``(0,1,1)``, ``(1,0,1)``, ``(1,1,0)`` (codes 0..3). The 12 first
neighbours of a site lie 4 on each of the three other sublattices; its 6 second neighbours
(``(±2,0,0)``…) on its own; its 24 third neighbours (``(±2,±1,±1)``…) 8 on each of the others.

* L1_0 with its c axis along ``α`` ("L10x", "L10y", "L10z"): sites with even ``h_α`` hold one
  species and sites with odd ``h_α`` the other (alternating (001) planes). It splits the
  sublattices into two pairs; the two ways of filling them are the two anti-phase (translation)
  variants.
* L1_2 ("L12"): one sublattice ``M`` holds one species, the other three the other species (FePt3:
  Fe on ``M``; Fe3Pt: Pt on ``M``). The four choices of ``M`` are the anti-phase variants.

Local order parameter (this module's definition). For atom ``i`` and a phase variant ``V``:

1. *Which anti-phase variant*: on the second and third neighbour shells of ``i`` (30 sites, not
   used again below), take the fraction ``f`` of species B (the alphabetically second species,
   e.g. Pt) on each of ``V``'s two sublattice sets (L1_0: the pair holding ``i``'s sublattice and
   the other pair; L1_2: each of the 4 candidates for ``M`` against the other three sublattices,
   choosing the ``M`` with the largest ``|f(M) - f(rest)|``). The set with more B is "B-rich":
   sign ``s = sign(f(set 1) - f(set 2))``.
2. *How well it is ordered*: on ``i`` itself and its 12 first neighbours (13 sites), the
   Bragg–Williams long-range order of the chosen variant,
   ``eta_V(i) = s * (f13(set 1) - f13(set 2))``.

``eta = 1`` for every atom of a perfect domain of ``V`` (also at the surface, where only the
present sites count), ``-1 <= eta <= 1``, and since step 2 uses other atoms than step 1, ``eta``
has expectation exactly 0 in a random alloy of any composition. The other parameters of a perfect
phase (interior atoms) are: L1_0 z: ``eta_L10x = eta_L10y = 3/10``, ``eta_L12 = 8/9``; L1_2:
``eta_L10`` = 0.2, 0.5 or 0.8 depending on the sublattice (1/2 on average). A tie in step 1 (no
information) gives ``eta = 0``; an atom with no site of a set in step 2 gives NaN.

Phases (:func:`classify_phases`): the four ``eta`` are averaged over the atom and its first
neighbours (``smooth`` rounds; one round shrinks the random-alloy spread from 0.30–0.39 to
0.12–0.16), and the atom takes the phase whose signature (:data:`SIGNATURES`: the four ``eta`` of
the perfect phase, all 0 for A1) is nearest in Euclidean distance. Using all four numbers separates
L1_0 from L1_2 far better than the largest ``eta`` alone (8/9 against 1).

Anti-sites (:func:`antisite_defects`): for an atom in an ordered neighbourhood, the species expected on its own site
follows from the B-rich set of the phase variant of its neighbourhood (the most common phase among
it and its first neighbours), measured on all three neighbour shells (42 sites, ``i`` itself
excluded); ``i`` is an anti-site if its species differs and the two sets differ by at least
`confidence` in B fraction. A swap defect is a first-neighbour pair of anti-sites
of opposite species (exchanging them restores the order). Anti-phase boundaries
(:func:`antiphase_boundaries`): ordered atoms with an atom of the same phase variant but another
anti-phase variant within their first three shells.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations, product

import numpy as np

from .._util.validate import at_least

__all__ = ["VARIANTS", "PHASES", "SIGNATURES", "fcc_shell_offsets", "site_neighbours", "local_order", "classify_phases",
           "warren_cowley", "antisite_defects", "swap_defects", "translation_variants", "antiphase_boundaries",
           "ChemicalOrder", "chemical_order"]

#: Columns of :func:`local_order`.
VARIANTS = ("L10x", "L10y", "L10z", "L12")
#: Labels of :func:`classify_phases`.
PHASES = VARIANTS + ("A1",)
#: (L10x, L10y, L10z, L12) local order of the interior of each perfect phase (rows :data:`PHASES`);
#: L1_2 has the mean of its sublattices' L1_0 values, the random alloy A1 the expectation 0.
SIGNATURES = np.array([[1.0, 0.3, 0.3, 8 / 9], [0.3, 1.0, 0.3, 8 / 9], [0.3, 0.3, 1.0, 8 / 9],
                       [0.5, 0.5, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]])


def fcc_shell_offsets(shell: int) -> np.ndarray:
    """Offsets (units of a/2) of the fcc neighbour shell 1 (12), 2 (6) or 3 (24), or 4 (12),
    5 (24)."""
    base = {1: (1, 1, 0), 2: (2, 0, 0), 3: (2, 1, 1), 4: (2, 2, 0), 5: (3, 1, 0)}
    if shell not in base:
        raise ValueError(f"shell: expected 1..5, got {shell!r}")
    out = set()
    for perm in permutations(base[shell]):
        for signs in product((1, -1), repeat=3):
            out.add(tuple(p * s for p, s in zip(perm, signs)))
    return np.array(sorted(out), dtype=np.int64)


_S1, _S2, _S3 = fcc_shell_offsets(1), fcc_shell_offsets(2), fcc_shell_offsets(3)


def _as_sites(sites) -> np.ndarray:
    h = np.asarray(sites)
    if h.ndim != 2 or h.shape[1] != 3:
        raise ValueError(f"sites: expected (n, 3) integer fcc site coordinates in units of a/2, got shape {h.shape}")
    if not np.issubdtype(h.dtype, np.integer):
        if not np.issubdtype(h.dtype, np.floating) or not np.all(h == np.rint(h)):
            raise TypeError(f"sites: expected integer fcc site coordinates (units of a/2), got dtype {h.dtype}")
        h = np.rint(h)
    h = h.astype(np.int64)
    odd = np.count_nonzero(h.sum(axis=1) % 2)
    if odd:
        raise ValueError(f"sites: expected fcc sites (h_x + h_y + h_z even), got {odd} sites with an odd sum")
    return h


def _binary(species, n: int):
    s = np.asarray(species)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"species: expected one label per site ({n}), got shape {s.shape}")
    names = np.unique(s)
    if names.size > 2:
        raise ValueError(f"species: expected a binary alloy (two species), got {names.size}: {list(names)[:6]}")
    if names.size < 2:
        raise ValueError(f"species: expected a binary alloy (two species), got only {list(names)}")
    return (s == names[1]).astype(np.float64), names


def site_neighbours(sites, offsets) -> np.ndarray:
    """Index of the atom on ``sites[i] + offsets[k]`` for every atom and offset, -1 where empty.

    Parameters
    ----------
    sites : (n, 3) int array
        fcc site coordinates, units of a/2.
    offsets : (k, 3) int array

    Returns
    -------
    (n, k) int64
    """
    h = _as_sites(sites)
    off = np.asarray(offsets, dtype=np.int64)
    lo = h.min(axis=0) + off.min(axis=0).clip(max=0) - 1
    span = (h.max(axis=0) + off.max(axis=0).clip(min=0) + 1) - lo + 1

    def key(v):
        v = v - lo
        return (v[..., 0] * span[1] + v[..., 1]) * span[2] + v[..., 2]

    keys = key(h)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    q = key(h[:, None, :] + off[None, :, :])
    pos = np.searchsorted(sorted_keys, q).clip(max=len(sorted_keys) - 1)
    found = sorted_keys[pos] == q
    return np.where(found, order[pos], -1)


def _class_of(offsets):
    """Sublattice code (0..3) of an offset's parity pattern: own 0, (0,1,1) 1, (1,0,1) 2, (1,1,0) 3."""
    p = np.asarray(offsets) % 2
    return np.select([~p.any(axis=-1), p[..., 0] == 0, p[..., 1] == 0], [0, 1, 2], 3)


def _sum_over(vals, mask):
    """Sum and count of the non-NaN entries of vals[:, mask]."""
    v = vals[:, mask]
    return np.nansum(v, axis=1), np.count_nonzero(~np.isnan(v), axis=1)


class _Terms:
    """Neighbour tables and occupations shared by the order parameters."""

    def __init__(self, h, xb):
        self.h = h
        self.x = xb
        self.nb1 = site_neighbours(h, _S1)
        self.nb2 = site_neighbours(h, _S2)
        self.nb3 = site_neighbours(h, _S3)

        def occ(nb):
            return np.where(nb >= 0, xb[np.clip(nb, 0, None)], np.nan)

        self.v1, self.v2, self.v3 = occ(self.nb1), occ(self.nb2), occ(self.nb3)

    # ---- L1_0 along axis `ax`: set P = sublattices with the same parity of h_ax as the atom
    def l10(self, ax):
        p1 = _S1[:, ax] % 2 == 0
        p3 = _S3[:, ax] % 2 == 0
        x = self.x[:, None]
        fS_P = _ratio([self.v2, self.v3[:, p3]])
        fS_Q = _ratio([self.v3[:, ~p3]])
        s = np.sign(np.round(fS_P - fS_Q, 9))
        fE_P = _ratio([x, self.v1[:, p1]])
        fE_Q = _ratio([self.v1[:, ~p1]])
        eta = np.where(s == 0, 0.0, s * (fE_P - fE_Q))
        # anti-phase variant: the parity of h_ax holding B (0/1), -1 if undetermined
        own = self.h[:, ax] % 2
        trans = np.where(s > 0, own, np.where(s < 0, 1 - own, -1))
        trans = np.where(np.isnan(s), -1, trans)
        # expected own species from all three shells, i excluded
        fA_P = _ratio([self.v1[:, p1], self.v2, self.v3[:, p3]])
        fA_Q = _ratio([self.v1[:, ~p1], self.v3[:, ~p3]])
        return eta, trans, fA_P - fA_Q  # diff > 0: own site should hold B

    # ---- L1_2: the minority/majority sublattice M among the 4
    def l12(self):
        c1, c3 = _class_of(_S1), _class_of(_S3)
        n = self.x.shape[0]
        # selection sums per relative class (0 = own sublattice: 2nd shell; 1..3: 3rd shell)
        sel_t = np.zeros((n, 4))
        sel_c = np.zeros((n, 4))
        all_t = np.zeros((n, 4))
        all_c = np.zeros((n, 4))
        ev_t = np.zeros((n, 4))
        ev_c = np.zeros((n, 4))
        t, c = _sum_over(self.v2, np.ones(6, bool))
        sel_t[:, 0], sel_c[:, 0] = t, c
        all_t[:, 0], all_c[:, 0] = t, c
        ev_t[:, 0], ev_c[:, 0] = self.x, 1.0
        for k in (1, 2, 3):  # three sublattice classes
            t3, n3 = _sum_over(self.v3, c3 == k)
            t1, n1 = _sum_over(self.v1, c1 == k)
            sel_t[:, k], sel_c[:, k] = t3, n3
            all_t[:, k], all_c[:, k] = t3 + t1, n3 + n1
            ev_t[:, k], ev_c[:, k] = t1, n1
        score_sel = _contrast(sel_t, sel_c)
        # rounded so that exact ties (common on small clusters) go to the lowest class whatever
        # the floating-point noise, which keeps eta symmetric under exchanging the species
        kbest = np.argmax(np.round(np.nan_to_num(np.abs(score_sel), nan=-1.0), 9), axis=1)
        rows = np.arange(n)
        s = np.sign(np.round(score_sel[rows, kbest], 9))
        eta_all = _contrast(ev_t, ev_c)[rows, kbest]
        eta = np.where(s == 0, 0.0, s * eta_all)
        # absolute code of M: own sublattice XOR the class pattern
        pattern = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]])
        trans = _class_of((self.h + pattern[kbest]) % 2)  # absolute sublattice code
        trans = np.where((s == 0) | np.isnan(s), -1, trans)
        # expected own species from all shells, i excluded: own in M or not
        score_all = _contrast(all_t, all_c)
        kall = np.argmax(np.round(np.nan_to_num(np.abs(score_all), nan=-1.0), 9), axis=1)
        sa = score_all[rows, kall]
        # own site in M (kall == 0): B there if sa > 0; own site outside M: B if sa < 0
        expect = np.where(kall == 0, sa, -sa)
        return eta, trans, expect


def _ratio(blocks):
    """Mean of the non-NaN entries of several (n, k) blocks together."""
    tot = sum(np.nansum(b, axis=1) for b in blocks)
    cnt = sum(np.count_nonzero(~np.isnan(b), axis=1) for b in blocks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / cnt


def _contrast(t, c):
    """f(k) - f(all other classes pooled) for every class k, (n, 4); NaN where a side is empty."""
    T, C = t.sum(axis=1, keepdims=True), c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return t / c - (T - t) / (C - c)


def local_order(sites, species) -> np.ndarray:
    """Local order parameters ``eta`` of every atom for L1_0 x, y, z and L1_2 (module docstring).

    Parameters
    ----------
    sites : (n, 3) int array
        fcc site coordinates in units of a/2 (even sum), crystal frame.
    species : (n,) sequence
        Two distinct labels (e.g. ``'Fe'``/``'Pt'``); which is which does not matter: ``eta`` is
        unchanged when the two species are exchanged.

    Returns
    -------
    (n, 4) float64
        Columns :data:`VARIANTS` = L10x, L10y, L10z, L12; 1 for a perfect domain, expectation 0 in
        a random alloy, NaN where undefined.
    """
    h = _as_sites(sites)
    xb, _ = _binary(species, h.shape[0])
    return _order(_Terms(h, xb))[0]


def _order(T: _Terms):
    cols, trans, expect = [], [], []
    for ax in range(3):
        e, t, d = T.l10(ax)
        cols.append(e), trans.append(t), expect.append(d)
    e, t, d = T.l12()
    cols.append(e), trans.append(t), expect.append(d)
    return np.stack(cols, axis=1), np.stack(trans, axis=1), np.stack(expect, axis=1)


def _smooth(values, nb1, rounds):
    v = values
    for _ in range(rounds):  # mean over the atom and its present first neighbours
        stack = np.concatenate([v[:, None, :], np.where((nb1 >= 0)[:, :, None], v[np.clip(nb1, 0, None)], np.nan)],
                               axis=1)
        with np.errstate(invalid="ignore"):
            v = np.nanmean(stack, axis=1) if np.isnan(stack).any() else stack.mean(axis=1)
    return v


def classify_phases(order, sites, *, smooth: int = 1):
    """Phase of every atom from its local order parameters: the nearest :data:`SIGNATURES` row to
    the order parameters averaged over the atom and its first neighbours.

    Parameters
    ----------
    order : (n, 4) array
        :func:`local_order` output.
    sites : (n, 3) int array
        The same sites (for the first-neighbour averaging).
    smooth : int
        Rounds of averaging over the atom and its first neighbours (0 = none). NaN parameters count
        as 0 (no evidence of order).

    Returns
    -------
    phase : (n,) str array
        One of :data:`PHASES` per atom.
    averaged : (n, 4) float64
        The averaged order parameters used.
    """
    h = _as_sites(sites)
    o = np.asarray(order, np.float64)
    if o.shape != (h.shape[0], 4):
        raise ValueError(f"order: expected shape ({h.shape[0]}, 4) (local_order of these sites), got {o.shape}")
    smooth = at_least(smooth, 0, "smooth", integer=True)
    avg = _smooth(o, site_neighbours(h, _S1), smooth)
    d = np.linalg.norm(np.nan_to_num(avg)[:, None, :] - SIGNATURES[None, :, :], axis=2)
    phase = np.asarray(PHASES)[np.argmin(d, axis=1)].astype("<U4")
    return phase, avg


def warren_cowley(sites, species, shells=(1, 2, 3), *, pair=None) -> np.ndarray:
    """Warren–Cowley short-range order ``alpha_k = 1 - P(B | A, shell k) / c_B``.

    ``P(B | A, shell k)`` is the fraction of B among all present shell-``k`` neighbours of all A
    atoms, ``c_B`` the B fraction of the whole model. 0 for a random alloy, negative when unlike
    neighbours are preferred; perfect L1_0 (equiatomic): shell 1 -1/3, shell 2 +1, shell 3 -1/3.

    Parameters
    ----------
    sites : (n, 3) int array
        fcc site coordinates, units of a/2.
    species : (n,) sequence
        Two labels.
    shells : sequence of int
        fcc shells 1..5.
    pair : (A, B), optional
        Species labels; default (first, second) in sorted order.

    Returns
    -------
    (len(shells),) float64
    """
    h = _as_sites(sites)
    s = np.asarray(species)
    xb, names = _binary(s, h.shape[0])
    if pair is None:
        pair = (names[0], names[1])
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and set(pair) == set(names.tolist())):
        raise ValueError(f"pair: expected the two species {tuple(names.tolist())} in some order, got {pair!r}")
    is_b = (s == pair[1]).astype(np.float64)
    is_a = s == pair[0]
    c_b = is_b.mean()
    out = []
    for k in shells:
        nb = site_neighbours(h, fcc_shell_offsets(int(k)))[is_a]
        present = nb >= 0
        p = is_b[np.clip(nb, 0, None)][present].sum() / max(present.sum(), 1)
        out.append(1.0 - p / c_b)
    return np.asarray(out)


def translation_variants(sites, species) -> np.ndarray:
    """Anti-phase (translation) variant of every atom for each of :data:`VARIANTS`, (n, 4) int:
    L1_0: the parity (0/1) of ``h_α`` whose sites hold the second species; L1_2: the sublattice code
    (0..3) of ``M``; -1 where undetermined. Chosen from the second and third shells (step 1 of
    the module docstring)."""
    h = _as_sites(sites)
    xb, _ = _binary(species, h.shape[0])
    return _order(_Terms(h, xb))[1]


def antisite_defects(sites, species, phase, *, confidence: float = 0.5) -> np.ndarray:
    """Anti-site atoms: species other than the one its phase variant puts on its site.

    Parameters
    ----------
    sites : (n, 3) int array
    species : (n,) sequence of two labels
    phase : (n,) str array
        :func:`classify_phases` labels; atoms whose neighbourhood (the atom and its first
        neighbours) is mostly "A1" are never anti-sites.
    confidence : float
        Smallest difference of the B fraction between the two sublattice sets around the atom
        (shells 1–3, the atom excluded) for a call; 1 in a perfect domain.

    Returns
    -------
    (n,) bool
    """
    h = _as_sites(sites)
    xb, _ = _binary(species, h.shape[0])
    ph = _as_phase(phase, h.shape[0])
    confidence = at_least(confidence, 0.0, "confidence")
    T = _Terms(h, xb)
    return _antisites(_order(T)[2], xb, ph, confidence, T.nb1)


def _as_phase(phase, n):
    p = np.asarray(phase).astype(str)
    if p.shape != (n,):
        raise ValueError(f"phase: expected one label per site ({n}), got shape {p.shape}")
    bad = sorted(set(p.tolist()) - set(PHASES))
    if bad:
        raise ValueError(f"phase: expected labels from {PHASES}, got {bad[:4]}")
    return p


def _neighbourhood_phase(ph, nb1):
    """Most common phase among the atom and its first neighbours (ties: the atom's own phase).
    An anti-site disturbs its own order parameters more than those of its neighbours, so its site's
    expected species is read from the phase of the neighbourhood."""
    names = np.asarray(PHASES)
    code = np.argsort(names)[np.searchsorted(names, ph, sorter=np.argsort(names))]
    nbc = np.where(nb1 >= 0, code[np.clip(nb1, 0, None)], -1)
    counts = (nbc[:, :, None] == np.arange(len(PHASES))).sum(axis=1).astype(np.float64)
    counts[np.arange(len(code)), code] += 1.5  # the atom itself, and the winner of a tie
    return names[np.argmax(counts, axis=1)]


def _antisites(expect, xb, ph, confidence, nb1):
    local = _neighbourhood_phase(ph, nb1)
    d = expect[np.arange(len(xb)), _column(local)]
    should_b = d > 0
    sure = np.abs(np.nan_to_num(d)) >= confidence
    return (local != "A1") & sure & (should_b != (xb > 0.5))


def swap_defects(sites, species, antisite) -> np.ndarray:
    """First-neighbour pairs of anti-sites of opposite species, (m, 2) int64 with ``i < j``."""
    h = _as_sites(sites)
    s = np.asarray(species)
    xb, _ = _binary(s, h.shape[0])
    anti = np.asarray(antisite, bool)
    if anti.shape != (h.shape[0],):
        raise ValueError(f"antisite: expected one flag per site ({h.shape[0]}), got shape {anti.shape}")
    nb = site_neighbours(h, _S1)
    i = np.repeat(np.arange(h.shape[0]), nb.shape[1])
    j = nb.ravel()
    ok = (j > i) & anti[i] & anti[np.clip(j, 0, None)] & (xb[i] != xb[np.clip(j, 0, None)])
    return np.stack([i[ok], j[ok]], axis=1).astype(np.int64)


def antiphase_boundaries(sites, phase, translation) -> np.ndarray:
    """Atoms at anti-phase boundaries, (n,) bool.

    An ordered atom is flagged when an atom of the same phase variant within its first three
    neighbour shells (up to ``sqrt(3/2) a``) is in another anti-phase variant. The reach of three
    shells also catches boundaries whose core, one or two planes thick, is classified as another
    phase (a {100} anti-phase boundary of L1_0 looks locally like L1_2).

    Parameters
    ----------
    sites : (n, 3) int array
    phase : (n,) str array
        :func:`classify_phases` labels.
    translation : (n,) or (n, 4) int array
        Anti-phase variant of each atom's own phase (``ChemicalOrder.translation``), or the
        :func:`translation_variants` table.
    """
    h = _as_sites(sites)
    n = h.shape[0]
    ph = _as_phase(phase, n)
    tr = np.asarray(translation)
    if tr.shape == (n, 4):
        tr = tr[np.arange(n), _column(ph)]
    if tr.shape != (n,):
        raise ValueError(f"translation: expected shape ({n},) or ({n}, 4), got {tr.shape}")
    t = np.where(ph == "A1", -1, tr)
    nb = site_neighbours(h, np.concatenate([_S1, _S2, _S3]))
    j = np.clip(nb, 0, None)
    same = (nb >= 0) & (ph[j] == ph[:, None])
    differ = same & (t[j] != t[:, None]) & (t[j] >= 0) & (t[:, None] >= 0)
    return differ.any(axis=1)


@dataclass
class ChemicalOrder:
    """Everything :func:`chemical_order` finds.

    Attributes
    ----------
    species : (2,) array
        The two species; "B" (the second) is the one whose fraction the parameters count.
    order : (n, 4) float64
        Local order parameters, columns :data:`VARIANTS`.
    averaged : (n, 4) float64
        First-neighbour averages used for the phases.
    phase : (n,) str
        :data:`PHASES` label of every atom.
    translation : (n,) int
        Anti-phase variant of the atom's own phase (-1 for A1 or undetermined).
    antisite : (n,) bool
    swaps : (m, 2) int64
        Swap-defect pairs.
    antiphase_boundary : (n,) bool
        Atoms at anti-phase boundaries.
    warren_cowley : (3,) float64
        Shells 1–3, pair (first species, second species).
    """

    species: np.ndarray
    order: np.ndarray
    averaged: np.ndarray
    phase: np.ndarray
    translation: np.ndarray
    antisite: np.ndarray
    swaps: np.ndarray
    antiphase_boundary: np.ndarray
    warren_cowley: np.ndarray


def chemical_order(sites, species, *, smooth: int = 1, confidence: float = 0.5) -> ChemicalOrder:
    """Local order parameters, phases, anti-phase variants, anti-site and swap defects and the
    Warren–Cowley parameters of a binary fcc alloy in one pass (see the module docstring).

    Parameters
    ----------
    sites : (n, 3) int array
        fcc site coordinates in units of a/2 (``LatticeFit.fcc_indices()``).
    species : (n,) sequence of two labels
    smooth
        See :func:`classify_phases`.
    confidence
        See :func:`antisite_defects`.

    Returns
    -------
    ChemicalOrder
    """
    h = _as_sites(sites)
    s = np.asarray(species)
    xb, names = _binary(s, h.shape[0])
    T = _Terms(h, xb)
    order, trans, expect = _order(T)
    phase, avg = classify_phases(order, h, smooth=smooth)
    confidence = at_least(confidence, 0.0, "confidence")
    anti = _antisites(expect, xb, phase, confidence, T.nb1)
    own_trans = np.where(phase == "A1", -1, trans[np.arange(h.shape[0]), _column(phase)])
    return ChemicalOrder(species=names, order=order, averaged=avg, phase=phase, translation=own_trans,
                         antisite=anti, swaps=swap_defects(h, s, anti),
                         antiphase_boundary=antiphase_boundaries(h, phase, own_trans),
                         warren_cowley=warren_cowley(h, s, (1, 2, 3)))


def _column(phase) -> np.ndarray:
    """Column of :data:`VARIANTS` of every phase label (0 for A1)."""
    table = {v: k for k, v in enumerate(VARIANTS)}
    names, inv = np.unique(np.asarray(phase).astype(str), return_inverse=True)
    return np.array([table.get(nm, 0) for nm in names.tolist()], dtype=np.int64)[inv]
