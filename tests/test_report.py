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
