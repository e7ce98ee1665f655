"""Time series: ICP against the known rigid motions, atom pairs against the known identities, nuclei
and their events against a simulated series in which one nucleus grows, one splits and one
dissolves."""
import csv
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from aetcore.analysis.track.correspondence import Correspondence, correspond
from aetcore.analysis.track.nuclei import find_nuclei, link_nuclei
from aetcore.analysis.track.registration import icp, kabsch
from aetcore.app.track import track_folders
from aetcore.analysis.track.series import track_series
from test_bond_order import random_packing

A, B, C = np.array([-9.0, -4, 0]), np.array([7.0, -5, 0]), np.array([2.0, 10, 0])
EZ = np.array([0, 0, 1.0])
# nucleus spheres (centre, radius Å) per time: A grows, B (a dumbbell) splits at t2, C dissolves at t2
SPHERES = [
    [(A, 5.0), (B - 3 * EZ, 5.0), (B + 3 * EZ, 5.0), (C, 5.0)],
    [(A, 6.0), (B - 3 * EZ, 5.0), (B + 3 * EZ, 5.0), (C, 5.0)],
    [(A, 7.0), (B - 6.5 * EZ, 4.5), (B + 6.5 * EZ, 4.5)],
]


def _angle(r1, r2):
    return np.degrees(np.arccos(np.clip((np.trace(r1.T @ r2) - 1) / 2, -1, 1)))


@pytest.fixture(scope="module")
def series():
    """Three models of one amorphous particle (1648 atoms): each rotated by ~4°, shifted by ~1.5 Å,
    jittered by 0.02 Å, shuffled and missing 5 random atoms. The order parameter is 0.9 ± 0.03
    inside the nucleus spheres and 0.3 ± 0.05 elsewhere."""
    base = random_packing(18.0, seed=7)
    rng = np.random.default_rng(11)
    models, orders, ids, rots, shifts, inside = [], [], [], [], [], []
    r = np.eye(3)
    for t, spheres in enumerate(SPHERES):
        ins = np.zeros(len(base), bool)
        for c, rad in spheres:
            ins |= np.linalg.norm(base - c, axis=1) <= rad
        order = np.where(ins, rng.normal(0.9, 0.03, len(base)), rng.normal(0.3, 0.05, len(base)))
        keep = np.sort(rng.permutation(len(base))[:-5])[rng.permutation(len(base) - 5)]
        if t:
            r = Rotation.from_rotvec(rng.normal(size=3) * np.radians(4) / np.sqrt(3)).as_matrix() @ r
        shift = rng.normal(0, 1.5, 3)
        models.append((base[keep] + rng.normal(0, 0.02, (len(keep), 3))) @ r.T + shift)
        orders.append(order[keep])
        ids.append(keep)
        rots.append(r)
        shifts.append(shift)
        inside.append(ins[keep])
    species = [np.where(i % 3 == 0, "Pt", "Fe") for i in ids]
    res = track_series(models, species, orders=orders)
    return dict(base=base, models=models, orders=orders, ids=ids, rots=rots, shifts=shifts, inside=inside,
                species=species, res=res)


def _nucleus_at(res, t, point):
    """Global id of the nucleus at time t whose centroid is nearest `point`."""
    n = res.nuclei
    sel = np.flatnonzero(n["time"] == t)
    xyz = np.stack([n["x"][sel], n["y"][sel], n["z"][sel]], axis=1)
    k = np.argmin(np.linalg.norm(xyz - point, axis=1))
    assert np.linalg.norm(xyz[k] - point) < 3.0   # nuclei are >= 13 Å apart
    return int(n["nucleus"][sel[k]])


def test_icp_recovers_the_rigid_motion(series):
    res = series["res"]
    r0, t0 = series["rots"][0], series["shifts"][0]
    for t in (1, 2):
        reg = res.registrations[t]
        expected = r0 @ series["rots"][t].T        # model t -> frame of model 0
        assert _angle(reg.rotation, expected) < 0.1     # measured 0.006°, 0.011°
        assert np.linalg.norm(reg.translation - (t0 - expected @ series["shifts"][t])) < 0.01  # 0.0014 Å
        assert reg.converged and reg.rmsd < 0.05
        assert 2.0 < reg.angle < 8.0


def test_correspondence_is_right(series):
    res, ids = series["res"], series["ids"]
    for t, c in enumerate(res.correspondences):
        common = np.intersect1d(ids[t], ids[t + 1]).size
        right = np.count_nonzero(ids[t][c.index_a] == ids[t + 1][c.index_b])
        assert right / common > 0.99       # measured 1.000
        assert right == c.index_a.size     # no wrong pair at all
        assert c.unmatched_a.size == len(ids[t]) - common


def test_nuclei_sizes_and_events_are_exactly_the_simulated_ones(series):
    res, inside = series["res"], series["inside"]
    a = [_nucleus_at(res, t, A) for t in range(3)]
    b = [_nucleus_at(res, t, B) for t in range(2)]
    b2 = [_nucleus_at(res, 2, B - 6.5 * EZ), _nucleus_at(res, 2, B + 6.5 * EZ)]
    c = [_nucleus_at(res, t, C) for t in range(2)]
    assert [int(np.unique(lab[lab >= 0]).size) for lab in res.nuclei_labels] == [3, 3, 3]
    # every atom simulated inside a sphere with >= 7 neighbours (and only those) belongs to a nucleus
    for t in range(3):
        x = res.positions[t]
        d, _ = cKDTree(x).query(x, k=2)
        coordination = cKDTree(x).query_ball_point(x, (1 + np.sqrt(2)) / 2 * np.median(d[:, 1]),
                                                   return_length=True) - 1
        assert np.count_nonzero(inside[t] & (coordination < 7)) < 0.05 * inside[t].sum()  # measured <= 3
        np.testing.assert_array_equal(res.nuclei_labels[t] >= 0, inside[t] & (coordination >= 7))
    events = sorted((e["time_from"], e["event"], tuple(e["from"]), tuple(e["to"])) for e in res.events)
    assert events == sorted([
        (0, "growth", (a[0],), (a[1],)), (0, "stable", (b[0],), (b[1],)), (0, "stable", (c[0],), (c[1],)),
        (1, "growth", (a[1],), (a[2],)), (1, "division", (b[1],), tuple(sorted(b2))), (1, "dissolution", (c[1],), ()),
    ])
    tracks = res.tracks
    fate = {tid: tr["fate"] for tid, tr in tracks.items()}
    track_of = dict(zip(res.nuclei["nucleus"].tolist(), res.nuclei["track"].tolist()))
    assert fate[track_of[a[0]]] == "growth" and track_of[a[0]] == track_of[a[2]]
    assert fate[track_of[b[0]]] == "division"
    assert fate[track_of[c[0]]] == "dissolution"
    for d in b2:
        assert tracks[track_of[d]]["parents"] == [track_of[b[0]]] and fate[track_of[d]] == "undetermined"
    assert sorted(fate.values()) == sorted(["growth", "division", "dissolution", "undetermined", "undetermined"])


def test_atom_changes_table(series):
    res, ids = series["res"], series["ids"]
    at = res.atoms
    m = (at["time_from"] == 1) & (at["atom_from"] >= 0) & (at["atom_to"] >= 0)
    # displacements after registration are the 0.02 Å jitter: rms sqrt(2·3)·0.02 = 0.049 Å
    assert np.sqrt(np.mean(at["displacement"][m] ** 2)) == pytest.approx(0.049, rel=0.1)
    assert not at["species_changed"].any()     # species follow the atoms
    # C's atoms lose their order between t1 and t2
    lost = m & (at["nucleus_from"] == _nucleus_at(res, 1, C))
    assert lost.sum() > 13 and (at["order_change"][lost] < -0.3).all() and (at["nucleus_to"][lost] == -1).all()
    # unmatched rows: 5 atoms gone, 5 new per transition minus the overlap of the dropped sets
    gone = (at["time_from"] == 0) & (at["atom_to"] == -1)
    assert gone.sum() == len(np.setdiff1d(ids[0], ids[1])) and np.isnan(at["displacement"][gone]).all()


def test_kabsch_exact_and_proper():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    r = Rotation.random(random_state=1).as_matrix()
    rot, t = kabsch(x, x @ r.T + [1, 2, 3])
    np.testing.assert_allclose(rot, r, atol=1e-12)
    np.testing.assert_allclose(t, [1, 2, 3], atol=1e-12)
    rot, _ = kabsch(x, x * [1, 1, -1])         # a mirror image: the best proper rotation, det +1
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_icp_on_a_lattice_and_the_rotation_search():
    from aetcore.model.simulate import fcc_particle
    x = fcc_particle(3.89, 15.0, thermal=0.05, seed=1)
    rng = np.random.default_rng(2)
    axis = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    for deg in (8.0, 12.0, 25.0):
        r = Rotation.from_rotvec(np.radians(deg) * axis).as_matrix()
        y = (x @ r.T + [1.5, -2.0, 0.7] + rng.normal(0, 0.03, x.shape))[rng.permutation(len(x))[:-20]]
        plain = icp(y, x, search_angle=0)
        if deg > 10:
            # beyond the basin the lattice locks onto a wrong registration, visible in the rmsd
            assert plain.rmsd > 0.5 and not plain.converged
        reg = icp(y, x)   # restarts on a 10° grid within 30° until the rmsd is accepted
        assert reg.converged and _angle(reg.rotation, r.T) < 0.1 and reg.rmsd < 0.06   # 0.006-0.024°, 0.046 Å
    # a rough start beyond the search range works too
    r = Rotation.from_rotvec(np.radians(70) * axis).as_matrix()
    start = Rotation.from_rotvec(np.radians(-65) * axis).as_matrix()
    assert _angle(icp(x @ r.T, x, rotation=start).rotation, r.T) < 0.01


def test_bond_order_finds_a_crystal_embedded_in_a_glass():
    from aetcore.analysis.bond_order import bond_order
    x = random_packing(16.0, seed=1, wall=False)
    c, radius = np.array([3.0, -2, 1]), 7.0
    g = np.mgrid[-5:6, -5:6, -5:6].reshape(3, -1).T
    sites = (g[g.sum(axis=1) % 2 == 0] * 3.89 / 2) @ Rotation.random(random_state=1).as_matrix().T + c
    sites = sites[np.linalg.norm(sites - c, axis=1) <= radius]          # 87 fcc atoms
    y = np.concatenate([sites, x[np.linalg.norm(x - c, axis=1) > radius + 1.0]])
    y = random_packing(0, x=y, fixed=np.arange(len(y)) < len(sites), wall=False, steps=40)
    lab = find_nuclei(y, bond_order(y).order)
    assert lab.max() == 0                                  # one nucleus, nothing at the free surface
    crystal = np.arange(len(y)) < len(sites)
    assert (lab[crystal] == 0).mean() > 0.8                # measured 0.885 (outer shell averages with glass)
    assert np.count_nonzero(lab[~crystal] == 0) < 0.15 * len(sites)   # measured 7 atoms
    np.testing.assert_allclose(y[lab == 0].mean(axis=0), c, atol=1.0)


def test_correspondence_with_large_noise():
    x = random_packing(12.0, seed=2)
    rng = np.random.default_rng(3)
    y = x + rng.normal(0, 0.25, x.shape)       # 0.43 Å rms per atom, a sixth of the spacing
    perm = rng.permutation(len(x))[:-10]
    y = np.concatenate([y[perm], rng.uniform(-30, -25, (4, 3))])  # 10 atoms gone, 4 far new ones
    h = correspond(x, y)
    right = perm[h.index_b] == h.index_a
    assert right.mean() > 0.99 and h.index_a.size >= 0.97 * len(perm)
    mu = correspond(x, y, method="mutual")
    assert (perm[mu.index_b] == mu.index_a).mean() > 0.99
    assert mu.index_a.size <= h.index_a.size
    assert set(h.unmatched_b.tolist()) >= set(range(len(perm), len(perm) + 4))


def test_find_nuclei_rules():
    # a line of atoms 1 Å apart, neighbours within 1.2 Å
    x = np.zeros((40, 3))
    x[:, 0] = np.arange(40)
    o = np.full(40, 0.2)
    o[2:20] = 0.6             # ordered slope ...
    o[8:11] = 0.8             # ... around a core
    o[25:32] = 0.6            # ordered but no core: joins nothing
    o[34:37] = 0.9            # a core too small
    lab = find_nuclei(x, o, cutoff=1.2, min_size=5, min_coordination=0)
    assert set(np.flatnonzero(lab == 0)) == set(range(2, 20))
    assert (lab[20:] == -1).all() and (lab[:2] == -1).all()
    # two cores on one ordered stretch: each ordered atom climbs to the core it rises towards
    o2 = np.full(40, 0.2)
    o2[1:30] = np.r_[np.linspace(0.55, 0.65, 4), [0.8] * 3, np.linspace(0.65, 0.55, 7),
                     np.linspace(0.56, 0.66, 7), [0.9] * 3, np.linspace(0.66, 0.55, 5)]
    lab2 = find_nuclei(x, o2, cutoff=1.2, min_size=5, min_coordination=0)
    assert set(np.flatnonzero(lab2 == 0)) == set(range(15, 30))   # the larger one first
    assert set(np.flatnonzero(lab2 == 1)) == set(range(1, 15))


def test_link_nuclei_merging_and_nucleation():
    la = np.array([0, 0, 0, 1, 1, 1, -1, -1, -1])
    lb = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    corr = Correspondence(np.arange(9), np.arange(9), np.zeros(9), np.zeros(0, int), np.zeros(0, int), 1.0)
    ev = link_nuclei(la, lb, corr, min_change=1)
    assert sorted((e["event"], e["from"], e["to"]) for e in ev) == [("merging", [0, 1], [0]), ("nucleation", [], [1])]


def _write_series(series, folder):
    from ase import Atoms
    from aetcore.io.writers import write_xyz
    dirs = []
    for t, (x, o, s) in enumerate(zip(series["models"], series["orders"], series["species"])):
        d = folder / f"t{t}"
        d.mkdir()
        atoms = Atoms(symbols=list(s), positions=x)
        atoms.arrays["order"] = o
        write_xyz(d / "atoms.xyz", atoms)
        dirs.append(d)
    return dirs


def test_track_folders_writes_tables_figures_and_report(series, tmp_path):
    dirs = _write_series(series, tmp_path)
    out = tmp_path / "out"
    summary = track_folders(dirs, out, order_key="order")
    assert summary["events"] == {"growth": 2, "stable": 2, "division": 1, "dissolution": 1}
    assert summary["fates"] == {"growth": 1, "dissolution": 1, "division": 1, "undetermined": 2}
    assert summary["nuclei_per_time"] == [3, 3, 3]
    assert abs(summary["registration"][1]["rotation_deg"] - _angle(series["rots"][1], series["rots"][0])) < 0.1
    td = out / "track"
    assert json.loads((td / "summary.json").read_text())["events"] == summary["events"]
    with open(td / "events.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["event"] for r in rows) == ["dissolution", "division", "growth", "growth", "stable", "stable"]
    div = next(r for r in rows if r["event"] == "division")
    assert len(div["nuclei_to"].split(";")) == 2
    with open(td / "atoms.csv") as fh:
        n_rows = sum(1 for _ in fh) - 1
    assert n_rows == len(series["res"].atoms["time_from"])
    with open(td / "nuclei.csv") as fh:
        nuc = list(csv.DictReader(fh))
    assert len(nuc) == 9 and {r["fate"] for r in nuc} == {"growth", "division", "dissolution", "undetermined"}
    import h5py
    with h5py.File(td / "track.h5") as h:
        assert h["times/2/positions"].shape == series["models"][2].shape
        np.testing.assert_allclose(h["times/1/rotation"][()], series["res"].registrations[1].rotation)
        assert h["events/event"].shape == (6,)
    for png in ("nucleus_sizes.png", "displacements.png"):
        assert (td / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if summary["report"]:
        assert "Tracking" in (out / "report.html").read_text()
    assert not list(td.glob(".*tmp*"))


def test_bad_input_is_refused(tmp_path, series):
    x = series["models"][0]
    with pytest.raises(ValueError, match="models\\[1\\]"):
        track_series([x, np.zeros((5, 2))])
    with pytest.raises(ValueError, match="orders"):
        track_series([x, x], orders=[np.zeros(len(x))])
    with pytest.raises(TypeError, match="models"):
        track_series(x)
    with pytest.raises(ValueError, match="core_threshold"):
        track_series([x, x], orders=[np.zeros(len(x))] * 2, threshold=0.6, core_threshold=0.5)
    with pytest.raises(ValueError, match="method"):
        correspond(x, x, method="greedy")
    with pytest.raises(ValueError, match="rotation"):
        icp(x, x, rotation=np.diag([1, 1, -1.0]))
    with pytest.raises(ValueError, match="trim"):
        icp(x, x, trim=0)
    with pytest.raises(ValueError, match="order"):
        find_nuclei(x, np.zeros(3))
    with pytest.raises(ValueError, match="folders"):
        track_folders([tmp_path / "nowhere", tmp_path / "nowhere2"], tmp_path / "out")
    with pytest.raises(ValueError, match="at least 2"):
        track_folders([tmp_path], tmp_path / "out")
    d = tmp_path / "t"
    d.mkdir()
    (d / "atoms.xyz").write_text("garbage\n")
    with pytest.raises(ValueError, match="atoms.xyz"):
        track_folders([d, d], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _crystallised(base, spheres):
    """`base` with the atoms nearest each sphere moved onto its fcc sites (a = 3.89 Å; one lattice
    orientation per `seed` key) and the others relaxed around them: the same atoms at every time."""
    from scipy.optimize import linear_sum_assignment
    g = np.mgrid[-6:7, -6:7, -6:7].reshape(3, -1).T
    g = g[g.sum(axis=1) % 2 == 0] * 3.89 / 2
    x = base.copy()
    fixed = np.zeros(len(x), bool)
    for c, radius, key in spheres:
        origin, orientation = key
        sites = g @ Rotation.random(random_state=orientation).as_matrix().T + origin
        sites = sites[np.linalg.norm(sites - c, axis=1) <= radius]
        if fixed.any():   # overlapping lobes of one crystal share their sites
            sites = sites[cKDTree(x[fixed]).query(sites)[0] > 0.5]
        cand = np.flatnonzero(~fixed)
        cand = cand[np.argsort(np.linalg.norm(x[cand] - c, axis=1))[:len(sites)]]
        ri, ci = linear_sum_assignment(((x[cand][:, None] - sites[None]) ** 2).sum(-1))
        x[cand[ri]] = sites[ci]
        fixed[cand[ri]] = True
    return random_packing(0, x=x, fixed=fixed, wall=False, steps=40), fixed


@pytest.mark.parametrize("seed", [4])   # seeds 0-3, 5, 6 give the same events (checked once)
def test_real_bond_order_series_through_track_folders(tmp_path, seed):
    """fcc nuclei in a free-surface glass of 2261 atoms, the order parameter computed from the
    positions: A grows (r 5.5 -> 7 -> 8.5 Å), B (two overlapping lobes of one crystal) splits in two,
    C dissolves. Each model is turned by ~5°, shifted, jittered and shuffled."""
    from ase import Atoms
    from aetcore.io.writers import write_xyz
    base = random_packing(20.0, seed=seed, wall=False)
    a, b, c = np.array([-10.0, -3, 0]), np.array([9.0, -6, 0]), np.array([3.0, 12, 0])
    series = [[(a, 5.5, (a, 1)), (b - 3.5 * EZ, 6.0, (b, 2)), (b + 3.5 * EZ, 6.0, (b, 2)), (c, 6.5, (c, 3))],
              [(a, 7.0, (a, 1)), (b - 3.5 * EZ, 6.0, (b, 2)), (b + 3.5 * EZ, 6.0, (b, 2)), (c, 6.5, (c, 3))],
              [(a, 8.5, (a, 1)), (b - 7.5 * EZ, 5.5, (b, 2)), (b + 7.5 * EZ, 5.5, (b, 2))]]
    rng = np.random.default_rng(seed)
    dirs, truth, perms = [], [], []
    for t, spheres in enumerate(series):
        x, fixed = _crystallised(base, spheres)
        r = Rotation.from_rotvec(rng.normal(size=3) * np.radians(3)).as_matrix()
        perm = rng.permutation(len(x))
        y = (x[perm] + rng.normal(0, 0.02, x.shape)) @ r.T + rng.normal(0, 1.5, 3)
        d = tmp_path / f"t{t}"
        d.mkdir()
        write_xyz(d / "atoms.xyz", Atoms(symbols=["Pt"] * len(y), positions=y))
        dirs.append(d)
        truth.append(x)
        perms.append(perm)
    summary = track_folders(dirs, tmp_path / "out", report=False)
    assert summary["events"] == {"growth": 2, "stable": 2, "division": 1, "dissolution": 1}
    assert summary["fates"] == {"growth": 1, "dissolution": 1, "division": 1, "undetermined": 2}
    assert all(r["converged"] for r in summary["registration"])
    with open(tmp_path / "out" / "track" / "atoms.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["atom_from"]) >= 0 and int(r["atom_to"]) >= 0]
    for t in range(2):
        ia = np.array([int(r["atom_from"]) for r in rows if r["time_from"] == str(t)])
        ib = np.array([int(r["atom_to"]) for r in rows if r["time_from"] == str(t)])
        right = perms[t][ia] == perms[t + 1][ib]
        # the simulated crystallisation moves atoms by up to 3 Å; the others must all be paired right
        still = np.linalg.norm(truth[t + 1] - truth[t], axis=1) < 0.5
        paired_still = still[perms[t][ia]]
        assert right[paired_still].mean() > 0.99           # measured 1.000
        assert paired_still.sum() > 0.98 * still.sum()    # measured 1.000
        assert right.mean() > 0.93                          # measured 0.987, 0.951 over all pairs


def test_threads_do_not_change_the_result(series):
    one = track_series(series["models"], series["species"], orders=series["orders"], threads=1)
    res = series["res"]   # threads=None: every core
    for a, b in zip(one.registrations, res.registrations):
        np.testing.assert_array_equal(a.rotation, b.rotation)
    for a, b in zip(one.correspondences, res.correspondences):
        np.testing.assert_array_equal(a.index_b, b.index_b)
    assert one.events == res.events
    with pytest.raises(ValueError, match="threads"):
        track_series(series["models"], orders=series["orders"], threads=0)


def test_figures_show_the_tracks_and_displacements(series):
    from aetcore.analysis.track.plots import FATE_COLORS, displacements_figure, nucleus_sizes_figure
    res = series["res"]
    fig = nucleus_sizes_figure(res.tracks, 3)
    ax = fig.axes[0]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert sorted(tuple(ln.get_ydata()) for ln in solid) == sorted(tuple(tr["sizes"]) for tr in res.tracks.values())
    assert len(dashed) == 2                            # B's track to each of its two daughters
    grow = next(ln for ln in solid if len(ln.get_ydata()) == 3)
    assert grow.get_color() == FATE_COLORS["growth"]
    fig = displacements_figure(res.atoms)
    assert len(fig.axes[0].patches) == 2               # one step histogram per transition
    with pytest.raises(ValueError, match="atoms"):
        displacements_figure({"x": [1]})
    with pytest.raises(TypeError, match="tracks"):
        nucleus_sizes_figure([1, 2])


def test_merging_and_fluctuation():
    """Two nuclei merge into one; a third grows, then shrinks back (fluctuation)."""
    base = random_packing(16.0, seed=8)
    d, e, f = np.array([-7.0, -4, 0]), np.array([6.0, -4, 0]), np.array([0.0, 10, 0])
    ex = np.array([1.0, 0, 0])
    series = [[(d, 4.5), (e, 4.5), (f, 4.0)],
              [(d, 4.5), (e, 4.5), (f, 5.0)],
              [(d + 3.25 * ex, 5.5), (e - 3.25 * ex, 5.5), (f, 4.0)]]
    rng = np.random.default_rng(9)
    orders = []
    for spheres in series:
        inside = np.zeros(len(base), bool)
        for c, radius in spheres:
            inside |= np.linalg.norm(base - c, axis=1) <= radius
        orders.append(np.where(inside, rng.normal(0.9, 0.03, len(base)), rng.normal(0.3, 0.05, len(base))))
    res = track_series([base] * 3, orders=orders, register=False)
    kinds = sorted((ev["time_from"], ev["event"], len(ev["from"]), len(ev["to"])) for ev in res.events)
    assert kinds == [(0, "growth", 1, 1), (0, "stable", 1, 1), (0, "stable", 1, 1),
                     (1, "merging", 2, 1), (1, "shrinkage", 1, 1)]
    fates = sorted(tr["fate"] for tr in res.tracks.values())
    assert fates == ["fluctuation", "merging", "merging", "undetermined"]
    merged = next(tr for tr in res.tracks.values() if tr["fate"] == "undetermined")
    assert len(merged["parents"]) == 2
