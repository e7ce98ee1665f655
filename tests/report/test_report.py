"""report.html: sections, atomic writes, and the figures of ``aet run``."""
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from aetcore import report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fig(label="x"):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4], label=label)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y")
    return fig


def _section_order(page: str) -> list:
    return re.findall(r'<section class="aet-section" id="sec-([^"]+)"', page)


def _img_srcs(page: str) -> list:
    return re.findall(r'<img src="([^"]+)"', page)


def _temp_files(folder: Path) -> list:
    return [p for p in folder.rglob("*") if p.name.startswith(".") and p.name != ".lock"]


def test_sections_sorted_by_order_and_default_appends(tmp_path):
    report.add_section(tmp_path, "track", "Tracking", "<p>t</p>", order=110)
    report.add_section(tmp_path, "analyze", "Analysis", "<p>a</p>", order=100)
    report.add_section(tmp_path, "recon", "Reconstruction", "<p>r</p>", order=30)
    report.add_section(tmp_path, "align", "Alignment", "<p>al</p>", order=20)
    out = report.add_section(tmp_path, "extra", "Extra", "<p>e</p>")  # after everything
    assert out == tmp_path / "report.html"
    page = out.read_text()
    assert _section_order(page) == ["align", "recon", "analyze", "track", "extra"]
    # the table of contents lists the same order
    toc = re.findall(r'<li><a href="#sec-([^"]+)">', page)
    assert toc == ["align", "recon", "analyze", "track", "extra"]
    meta = json.loads((tmp_path / "report" / "sections.json").read_text())["sections"]
    assert meta["extra"]["order"] > meta["track"]["order"]
    # equal orders keep the order of first addition; a rebuild gives the same sections
    report.add_section(tmp_path, "b-second", "B", "", order=50)
    report.add_section(tmp_path, "a-first-added-later", "A", "", order=50)
    page = report.build_report(tmp_path).read_text()
    assert _section_order(page) == ["align", "recon", "b-second", "a-first-added-later", "analyze", "track",
                                    "extra"]
    from aetcore import __version__
    assert f"aetcore {__version__}" in page


def test_readding_a_key_replaces_it_and_drops_stale_figures(tmp_path):
    report.add_section(tmp_path, "run-atoms", "Atoms v1", "<p>first</p>",
                       figures={"a": _fig(), "b": (_fig(), "caption b")}, order=40)
    report.add_section(tmp_path, "other", "Other", "<p>o</p>", order=50)
    assert (tmp_path / "report" / "run-atoms-b.png").exists()
    out = report.add_section(tmp_path, "run-atoms", "Atoms v2", "<p>second</p>", figures={"a": _fig()})
    page = out.read_text()
    assert "first" not in page and "second" in page and "Atoms v2" in page and "Atoms v1" not in page
    assert page.count('id="sec-run-atoms"') == 1
    assert _section_order(page) == ["run-atoms", "other"]  # kept its order
    assert not (tmp_path / "report" / "run-atoms-b.png").exists()
    report.remove_section(tmp_path, "run-atoms")
    page = (tmp_path / "report.html").read_text()
    assert _section_order(page) == ["other"]
    assert not list((tmp_path / "report").glob("run-atoms*"))


def test_images_exist_are_png_and_have_alt_text(tmp_path):
    figs = {"one": (_fig(), "A <caption> & more"), "two": _fig()}
    page = report.add_section(tmp_path, "s", "Section", "<p>body</p>", figures=figs).read_text()
    srcs = _img_srcs(page)
    assert srcs == ["report/s-one.png", "report/s-two.png"]
    for src in srcs:
        data = (tmp_path / src).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert 'alt="A &lt;caption&gt; &amp; more"' in page
    assert "<figcaption>A &lt;caption&gt; &amp; more</figcaption>" in page
    assert re.search(r'alt="Section: two"', page)
    assert not plt.get_fignums()  # every figure passed was closed
    # a PNG deleted by hand: the rebuilt page keeps the section but no longer links the file
    (tmp_path / "report" / "s-one.png").unlink()
    page = report.build_report(tmp_path).read_text()
    assert _img_srcs(page) == ["report/s-two.png"] and "<p>body</p>" in page
    # two sections may not claim the same PNG (key "s-x" + figure "y" vs key "s" + figure "x-y")
    report.add_section(tmp_path, "s-x", "Other", "", figures={"y": _fig()})
    with pytest.raises(ValueError, match="figures: the file s-x-y.png already belongs to section 's-x'"):
        report.add_section(tmp_path, "s", "Section", "", figures={"x-y": _fig()})
    assert _img_srcs(report.build_report(tmp_path).read_text()) == ["report/s-two.png", "report/s-x-y.png"]
    assert not plt.get_fignums()


def test_title_is_escaped(tmp_path):
    page = report.add_section(tmp_path, "x", "<script>alert(1)</script> & Fe/Pt", "<p>ok</p>").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Fe/Pt" in page


def test_failed_savefig_leaves_previous_report_intact(tmp_path, monkeypatch):
    report.add_section(tmp_path, "recon", "Reconstruction", "<p>old body</p>", figures={"a": _fig("old")})
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    good, bad = _fig("new"), _fig("new")

    def boom(*args, **kwargs):
        Path(args[0]).write_bytes(b"\x89PNG half")  # half written, then the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(bad, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.add_section(tmp_path, "recon", "Reconstruction NEW", "<p>new body</p>",
                           figures={"a": good, "b": bad})
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # fragment, PNG, sections.json and report.html untouched
    assert _temp_files(tmp_path) == []
    assert not plt.get_fignums()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="key"):
        report.add_section(tmp_path, "../evil", "t", "")
    with pytest.raises(TypeError, match="order"):
        report.add_section(tmp_path, "k", "t", "", order=1.5)
    with pytest.raises(TypeError, match="figures"):
        report.add_section(tmp_path, "k", "t", "", figures={"a": np.zeros(3)})
    with pytest.raises(ValueError, match="folder"):
        report.add_section(tmp_path / "missing", "k", "t", "")
    with pytest.raises(TypeError, match="title"):
        report.add_section(tmp_path, "k", None, "")
    assert not (tmp_path / "report.html").exists()


def test_concurrent_writers_lose_no_section(tmp_path):
    import threading

    errors = []

    def writer(prefix, order):
        try:
            for i in range(6):
                report.add_section(tmp_path, f"{prefix}{i}", f"{prefix} {i}", f"<p>{prefix}{i}</p>", order=order)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=("analyze", 100)),
               threading.Thread(target=writer, args=("track", 110))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    order = _section_order((tmp_path / "report.html").read_text())
    assert order == [f"analyze{i}" for i in range(6)] + [f"track{i}" for i in range(6)]


# ------------------------------------------------------------------------------------------
# Figures of aet run, on a small simulated FePt particle
# ------------------------------------------------------------------------------------------

PIXEL = 0.4


@pytest.fixture(scope="module")
def run_data():
    from aetcore.model.simulate import fept_particle, ground_truth_volume

    p = fept_particle(7.0, seed=0)
    rng = np.random.default_rng(0)
    vol = ground_truth_volume(p.positions, p.species, (36, 40, 44), PIXEL)  # not cubic: catches axis swaps
    vol = vol + rng.normal(0, 0.02 * float(vol.max()), vol.shape).astype(np.float32)
    sym = list(p.species)
    z = {"Fe": 26, "Pt": 78}
    intensity = np.array([z[s] ** 1.7 for s in sym]) * (1 + 0.08 * rng.normal(size=len(sym)))
    errors = 0.5 * np.exp(-np.arange(30) / 10.0) + 0.05
    freq = np.linspace(0.0, 1 / (2 * PIXEL), 21)
    corr = np.exp(-(freq / 0.6) ** 2)
    angles = np.linspace(-70, 70, 15)
    shifts = rng.normal(0, 1.5, (15, 2))
    return dict(volume=vol, pixel_size=PIXEL, species=("Fe", "Pt"), symbols=sym, positions=p.positions,
                intensity=intensity, errors=errors, rfree=1.3 * errors, fsc=(freq, corr), shifts=shifts,
                rotation=1.3, angles=angles)


def _png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_histogram_fits_are_the_per_species_mean_and_std(run_data):
    I, sym = run_data["intensity"], run_data["symbols"]
    stats = report.species_intensity_stats(I, sym, ("Pt", "Fe", "Au"))
    assert list(stats) == ["Pt", "Fe", "Au"]
    for s in ("Fe", "Pt"):
        v = I[np.asarray(sym) == s]
        assert stats[s]["n"] == v.size
        assert stats[s]["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert stats[s]["std"] == pytest.approx(v.std(), rel=1e-12)
    assert stats["Au"]["n"] == 0 and np.isnan(stats["Au"]["mean"])

    fig = report.intensity_histogram_figure(I, sym, ("Fe", "Pt"))
    ax = fig.axes[0]
    bars = ax.containers
    assert [int(round(sum(r.get_height() for r in c))) for c in bars] == [stats["Fe"]["n"], stats["Pt"]["n"]]
    width = bars[0][0].get_width()
    for s in ("Fe", "Pt"):
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"fit-{s}"]
        x, y = line.get_xdata(), line.get_ydata()
        assert x[np.argmax(y)] == pytest.approx(stats[s]["mean"], rel=1e-12)
        # scaled to the species' count: peak height n * width / (std sqrt(2 pi))
        assert y.max() == pytest.approx(stats[s]["n"] * width / (stats[s]["std"] * np.sqrt(2 * np.pi)), rel=1e-9)
    assert ax.get_xlabel() and ax.get_ylabel()


def test_fsc_figure_marks_the_given_resolution(run_data):
    from aetcore.quality.metrics import resolution_from_fsc

    freq, corr = run_data["fsc"]
    fig = report.fsc_figure(freq, corr, resolution=2.5)
    ax = fig.axes[0]
    (mark,) = [ln for ln in ax.lines if ln.get_gid() == "resolution"]
    assert np.allclose(mark.get_xdata(), 1 / 2.5)
    assert "2.50 Å" in ax.get_title()
    (thr,) = [ln for ln in ax.lines if ln.get_gid() == "threshold"]
    assert np.allclose(thr.get_ydata(), 0.143)
    # default: the resolution computed from the curve
    ax = report.fsc_figure(freq, corr).axes[0]
    (mark,) = [ln for ln in ax.lines if ln.get_gid() == "resolution"]
    assert mark.get_xdata()[0] == pytest.approx(1 / resolution_from_fsc(freq, corr))
    # no correlation at all: no mark, and the title says so
    ax = report.fsc_figure(freq, np.zeros_like(freq) + 0.01).axes[0]
    assert not [ln for ln in ax.lines if ln.get_gid() == "resolution"]
    assert "no resolution" in ax.get_title()


def test_slices_and_projections_show_the_right_planes(run_data):
    vol, p = run_data["volume"], PIXEL
    nz, ny, nx = vol.shape
    fig = report.orthoslices_figure(vol, p)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3
    expect = [vol[nz // 2], vol[:, ny // 2, :], vol[:, :, nx // 2]]
    for ax, want in zip(panels, expect):
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), want)
        assert "Å" in ax.get_xlabel() and "Å" in ax.get_ylabel()
        assert any(a.get_gid() == "scale-bar" for a in ax.artists)
    # origin at n // 2: the voxel centre x = nx // 2 is at 0 Å
    left, right, bottom, top = panels[0].images[0].get_extent()
    assert left == pytest.approx(-(nx // 2 + 0.5) * p) and right == pytest.approx((nx - nx // 2 - 0.5) * p)
    assert bottom == pytest.approx(-(ny // 2 + 0.5) * p)
    assert any(ax.get_ylabel().startswith("voxel value") for ax in fig.axes)  # the colour bar
    fig = report.projections_figure(vol, p)
    panels = [ax for ax in fig.axes if ax.images]
    for ax, want in zip(panels, [vol.max(axis=0), vol.max(axis=1), vol.max(axis=2)]):
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), want)


def test_convergence_shifts_and_atoms_figures(run_data):
    e = run_data["errors"]
    ax = report.convergence_figure(e, run_data["rfree"]).axes[0]
    assert ax.get_yscale() == "log"
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "errors"]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, e.size + 1))
    np.testing.assert_array_equal(line.get_ydata(), e)
    assert report.convergence_figure(np.r_[0.0, e]).axes[0].get_yscale() == "linear"

    sh, ang = run_data["shifts"], run_data["angles"][::-1]  # unsorted angles are plotted in order
    ax = report.shifts_figure(sh, ang, rotation=1.3, pixel_size=PIXEL).axes[0]
    (dy,) = [ln for ln in ax.lines if ln.get_gid() == "dy"]
    np.testing.assert_allclose(dy.get_xdata(), np.sort(ang))
    np.testing.assert_allclose(dy.get_ydata(), sh[np.argsort(ang), 0])
    assert "1.30°" in ax.get_title() and ax.get_ylabel() == "shift (px)"

    fig = report.atoms_figure(run_data["positions"], run_data["symbols"], ("Fe", "Pt"))
    ax3 = [ax for ax in fig.axes if ax.name == "3d"][0]
    counts = {c.get_gid(): len(c.get_offsets()) for c in ax3.collections}
    sym = run_data["symbols"]
    assert counts == {"atoms-Fe": sym.count("Fe"), "atoms-Pt": sym.count("Pt")}
    assert len(fig.axes) == 4


def test_run_figures_skip_missing_inputs_and_refuse_bad_ones(run_data):
    base = {k: run_data[k] for k in ("volume", "pixel_size", "species", "symbols", "positions", "intensity")}
    figs = report.run_figures(**base)
    assert list(figs) == ["orthoslices", "projections", "histogram", "atoms"]
    assert all(isinstance(c, str) and c for _, c in figs.values())
    with pytest.raises(ValueError, match="symbols"):
        report.run_figures(**{**base, "symbols": base["symbols"][:-1]})
    with pytest.raises(ValueError, match="intensity"):
        report.run_figures(**{**base, "intensity": base["intensity"][:-1]})
    with pytest.raises(TypeError, match="fsc"):
        report.run_figures(**base, fsc=np.zeros(5))
    with pytest.raises(ValueError, match="angles"):
        report.run_figures(**base, shifts=run_data["shifts"], angles=run_data["angles"][:-1])
    with pytest.raises(ValueError, match="pixel_size"):
        report.run_figures(**{**base, "pixel_size": -1.0})


def test_write_run_report_end_to_end(tmp_path, run_data):
    report.add_section(tmp_path, "analysis", "Analysis", "<p>from aet analyze</p>", order=100)
    summary = {"atoms": len(run_data["symbols"]), "r1_before": 0.21, "r1_after": 0.12,
               "reconstruction": {"iterations_run": 30, "fourier_r": 0.07, "rfree": 0.09},
               "timings_s": {"reconstruct": 12.5, "trace": 1.25}}
    out = report.write_run_report(tmp_path, **run_data, summary=summary)
    page = out.read_text()
    assert _section_order(page) == ["run-summary", "run-alignment", "run-reconstruction", "run-atoms", "analysis"]
    srcs = _img_srcs(page)
    assert len(srcs) == 7
    for src in srcs:
        w, h = _png_size(tmp_path / src)
        assert w >= 500 and h >= 300 and (tmp_path / src).stat().st_size > 10_000
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == sorted(Path(s).name for s in srcs)  # nothing unreferenced either
    assert "0.21" in page and "0.12" in page and "12.5 s" in page
    from aetcore.quality.metrics import resolution_from_fsc
    res = resolution_from_fsc(*run_data["fsc"])
    assert f"{res:.3g} Å" in page
    assert not plt.get_fignums() and _temp_files(tmp_path) == []

    # a second run without alignment, FSC or errors: those figures and the alignment section go
    lean = {k: run_data[k] for k in ("volume", "pixel_size", "species", "symbols", "positions", "intensity")}
    page = report.write_run_report(tmp_path, **lean).read_text()
    assert _section_order(page) == ["run-summary", "run-reconstruction", "run-atoms", "analysis"]
    assert len(_img_srcs(page)) == 4
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == sorted(Path(s).name for s in _img_srcs(page))
