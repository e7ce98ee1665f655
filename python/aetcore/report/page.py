"""The results folder's ``report.html``: sections of HTML and PNG figures written by ``aet run``,
``aet analyze`` and ``aet track`` into the same folder.

Layout of a results folder ``DIR``::

    DIR/report.html              the page (self-contained CSS, relative links to report/*.png)
    DIR/report/sections.json     title, order and figure files of every section
    DIR/report/<key>.html        one HTML fragment per section
    DIR/report/<key>-<name>.png  the section's figures

:func:`add_section` writes (or replaces) one section and rebuilds the page with
:func:`build_report`. Every file is written whole or not at all (:func:`aetcore.io.atomic_path`):
if a figure cannot be saved, the section's previous files and the previous page stay as they were.
Section order: the steps of ``aet run`` use 10..90, ``aet analyze`` 100, ``aet track`` 110.
"""
from __future__ import annotations

import datetime as _dt
import html as _html
import json
import re
from contextlib import ExitStack, contextmanager
from numbers import Integral, Real
from pathlib import Path

from .._util.validate import as_folder, flag
from ..io.writers import atomic_path

__all__ = ["add_section", "remove_section", "build_report", "REPORT_DIR", "REPORT_FILE"]

REPORT_DIR = "report"
REPORT_FILE = "report.html"
SECTIONS_FILE = "sections.json"
DEFAULT_DPI = 110

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --------------------------------------------------------------------------------------------
# Sections and the page
# --------------------------------------------------------------------------------------------

def _folder(folder) -> Path:
    return as_folder(folder)


def _check_name(value, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a str, got {type(value).__name__}")
    if not _NAME.match(value) or value.endswith(".json") or ".." in value:
        raise ValueError(f"{what}: expected 1-64 characters of letters, digits, '_', '-', '.' starting with "
                         f"a letter or digit (it becomes part of a file name), got {value!r}")
    return value


@contextmanager
def _locked(report_dir: Path):
    """Serialise the read-modify-write of sections.json between processes (POSIX advisory lock;
    a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(report_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_sections(report_dir: Path) -> dict:
    p = report_dir / SECTIONS_FILE
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read the report's section list ({e}); remove the file to start anew") from e
    if not isinstance(data, dict) or not isinstance(data.get("sections", {}), dict):
        raise ValueError(f"{p}: expected an object with a 'sections' mapping")
    return data.get("sections", {})


def _sections_text(sections: dict) -> str:
    return json.dumps({"format": "aetcore-report-sections", "version": 1, "sections": sections},
                      indent=2, sort_keys=True) + "\n"


def _sorted_keys(sections: dict) -> list:
    return sorted(sections, key=lambda k: (sections[k].get("order", 0), sections[k].get("seq", 0), k))


def _figure_items(figures) -> list:
    """[(name, Figure, caption or None)] from {name: Figure | (Figure, caption) | None}."""
    if figures is None:
        return []
    if not isinstance(figures, dict):
        raise TypeError(f"figures: expected a dict name -> matplotlib Figure or (Figure, caption), "
                        f"got {type(figures).__name__}")
    from matplotlib.figure import Figure

    items = []
    for name, value in figures.items():
        _check_name(name, f"figures: name {name!r}")
        if value is None:
            continue  # an optional figure that was not made
        caption = None
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"figures[{name!r}]: expected (Figure, caption), got a tuple of {len(value)}")
            value, caption = value
            if caption is not None and not isinstance(caption, str):
                raise TypeError(f"figures[{name!r}]: expected the caption as a str, got {type(caption).__name__}")
        if not isinstance(value, Figure):
            raise TypeError(f"figures[{name!r}]: expected a matplotlib Figure, got {type(value).__name__}")
        items.append((name, value, caption))
    return items


def _close(items) -> None:
    import matplotlib.pyplot as plt
    for _, fig, _ in items:
        plt.close(fig)


def _fragment(key: str, title: str, body: str, figs: list) -> str:
    parts = [f'<section class="aet-section" id="sec-{key}">', f"<h2>{_html.escape(title)}</h2>"]
    if body:
        parts.append(body)
    for name, file, caption in figs:
        alt = caption if caption else f"{title}: {name}"
        parts.append('<figure class="aet-figure">'
                     f'<img src="{REPORT_DIR}/{_html.escape(file)}" alt="{_html.escape(alt)}" loading="lazy">'
                     + (f"<figcaption>{_html.escape(caption)}</figcaption>" if caption else "")
                     + "</figure>")
    parts.append("</section>")
    return "\n".join(parts) + "\n"


def add_section(folder, key, title, html, figures=None, order=None, *, dpi=DEFAULT_DPI, build=True) -> Path:
    """Write (or replace) one section of ``folder/report.html`` and rebuild the page.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing results folder; ``folder/report/`` is created if needed.
    key : str
        Section identifier, also its file name stem (letters, digits, ``_``, ``-``, ``.``; at
        most 64 characters). Adding a key again replaces its section (fragment and figures).
    title : str
        Heading of the section (plain text; HTML-escaped).
    html : str
        Body of the section, HTML inserted as given (escape user text yourself, e.g. with
        ``html.escape``). May be empty.
    figures : dict, optional
        ``name -> matplotlib.figure.Figure`` or ``name -> (Figure, caption)``; saved as
        ``folder/report/<key>-<name>.png`` (PNG at `dpi`) and shown in insertion order below the
        body, with the caption as alt text and figure caption. ``None`` values are skipped.
        Every figure passed is closed afterwards, also on error.
    order : int, optional
        Sort key of the section (``aet run`` 10..90, ``aet analyze`` 100, ``aet track`` 110);
        sections with equal order keep the order they were first added in. Default: an existing
        key keeps its order, a new key goes after every existing section.
    dpi : float, optional
        Resolution of the PNGs, dots per inch (figure size in inches × dpi = pixels).
    build : bool, optional
        Rebuild ``report.html`` now (default). Pass False when adding several sections in a row
        and call :func:`build_report` once at the end.

    Returns
    -------
    pathlib.Path
        ``folder/report.html`` (or the fragment ``folder/report/<key>.html`` if `build` is False).

    Notes
    -----
    The PNGs, the fragment and ``sections.json`` are first written to temporary files and only
    renamed into place once all of them were written, so a failure (e.g. while saving a figure)
    leaves the previous section, the previous page and no temporary files behind.
    """
    items = []
    try:
        items = _figure_items(figures)
        root = _folder(folder)
        _check_name(key, "key")
        if not isinstance(title, str):
            raise TypeError(f"title: expected a str, got {type(title).__name__}")
        if not isinstance(html, str):
            raise TypeError(f"html: expected a str of HTML, got {type(html).__name__}")
        if order is not None and (isinstance(order, bool) or not isinstance(order, Integral)):
            raise TypeError(f"order: expected an int or None, got {type(order).__name__}")
        if isinstance(dpi, bool) or not isinstance(dpi, Real) or not 0 < dpi <= 1200:
            raise ValueError(f"dpi: expected a number in (0, 1200], got {dpi!r}")
        build = flag(build, "build")

        rdir = root / REPORT_DIR
        rdir.mkdir(exist_ok=True)
        with _locked(rdir):
            sections = _read_sections(rdir)
            old = sections.get(key)
            if order is None:
                order = old["order"] if old else (max((s.get("order", 0) for s in sections.values()), default=0)
                                                  + (1 if sections else 10))
            seq = old["seq"] if old else max((s.get("seq", 0) for s in sections.values()), default=0) + 1
            files = [(name, f"{key}-{name}.png", caption) for name, _, caption in items]
            taken = {f: k for k, sec in sections.items() if k != key for f in sec.get("figures", [])}
            clash = [f for _, f, _ in files if f in taken]
            if clash:
                raise ValueError(f"figures: the file {clash[0]} already belongs to section {taken[clash[0]]!r}; "
                                 "choose another figure name or key")
            sections[key] = {"title": title, "order": int(order), "seq": int(seq),
                             "figures": [f for _, f, _ in files]}
            with ExitStack() as stack:
                # entered first, renamed last: PNGs, then the fragment, then the section list
                meta_tmp = stack.enter_context(atomic_path(rdir / SECTIONS_FILE))
                frag_tmp = stack.enter_context(atomic_path(rdir / f"{key}.html"))
                for (name, fig, _), (_, file, _) in zip(items, files):
                    tmp = stack.enter_context(atomic_path(rdir / file))
                    fig.savefig(tmp, format="png", dpi=dpi)
                with open(frag_tmp, "w", encoding="utf-8") as fh:
                    fh.write(_fragment(key, title, html, files))
                with open(meta_tmp, "w", encoding="utf-8") as fh:
                    fh.write(_sections_text(sections))
            for stale in set(old["figures"] if old else []) - set(sections[key]["figures"]):
                try:
                    (rdir / stale).unlink()
                except FileNotFoundError:
                    pass
            if build:
                return _build(root, sections)
            return rdir / f"{key}.html"
    finally:
        _close(items)


def remove_section(folder, key, *, build=True) -> Path:
    """Remove a section (its fragment and figures) from the report and rebuild the page.

    Parameters
    ----------
    folder : str or os.PathLike
        The results folder.
    key : str
        The section's key; a key that is not in the report is ignored.
    build : bool, optional
        Rebuild ``report.html`` now (default).

    Returns
    -------
    pathlib.Path
        ``folder/report.html`` (written only if `build`).
    """
    root = _folder(folder)
    _check_name(key, "key")
    build = flag(build, "build")
    rdir = root / REPORT_DIR
    rdir.mkdir(exist_ok=True)
    with _locked(rdir):
        sections = _read_sections(rdir)
        old = sections.pop(key, None)
        if old is not None:
            with atomic_path(rdir / SECTIONS_FILE) as tmp:
                Path(tmp).write_text(_sections_text(sections), encoding="utf-8")
            for file in [f"{key}.html", *old.get("figures", [])]:
                try:
                    (rdir / file).unlink()
                except FileNotFoundError:
                    pass
        return _build(root, sections) if build else root / REPORT_FILE


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:1em 2em}
header h1{margin:0 0 .2em 0;font-size:1.6em}
header .meta{font-size:.9em;opacity:.85}
main{max-width:1200px;margin:0 auto;padding:1em 2em 3em 2em}
nav.toc{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1.2em;margin:1em 0}
nav.toc ol{margin:.3em 0;padding-left:1.4em}
section.aet-section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em 1.4em 1em 1.4em;margin:1.2em 0}
section.aet-section h2{border-bottom:1px solid #eee;padding-bottom:.2em}
figure.aet-figure{margin:1em 0;text-align:center}
figure.aet-figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;margin-top:.3em;text-align:left}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .7em;text-align:left}
th{background:#f0f3f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.files{font-size:.9em}
"""


def _build(root: Path, sections: dict) -> Path:
    from .. import __version__

    rdir = root / REPORT_DIR
    body, toc = [], []
    for key in _sorted_keys(sections):
        frag = rdir / f"{key}.html"
        if not frag.is_file():
            continue
        text = frag.read_text(encoding="utf-8")
        for f in sections[key].get("figures", []):
            if not (rdir / f).is_file():  # removed by hand: drop its <figure> rather than link nothing
                text = re.sub(r'<figure class="aet-figure"><img src="' + re.escape(f"{REPORT_DIR}/{_html.escape(f)}")
                              + r'".*?</figure>\n?', "", text, flags=re.S)
        body.append(text)
        toc.append(f'<li><a href="#sec-{key}">{_html.escape(sections[key].get("title", key))}</a></li>')
    files = sorted(p.name for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name != REPORT_FILE)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aetcore report: {_html.escape(root.resolve().name)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>aetcore report: {_html.escape(root.resolve().name)}</h1>",
        f'<div class="meta">aetcore {_html.escape(str(__version__))} &middot; generated {now}</div>',
        "</header>",
        "<main>",
        '<nav class="toc"><strong>Contents</strong><ol>' + "".join(toc) + "</ol>"
        + ('<div class="files">Files in this folder: '
           + ", ".join(f'<a href="{_html.escape(f)}">{_html.escape(f)}</a>' for f in files) + "</div>"
           if files else "")
        + "</nav>",
        *(body if body else ["<p>No sections yet.</p>"]),
        "</main>",
        "</body>",
        "</html>",
    ]
    out = root / REPORT_FILE
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(page) + "\n")
    return out


def build_report(folder) -> Path:
    """Assemble ``folder/report.html`` from the sections in ``folder/report/``.

    The page is self-contained (inline CSS) and links the figures relatively
    (``report/<key>-<name>.png``), so the folder can be moved or archived as a whole. It has a
    header with the aetcore version and the date (UTC), a table of contents, links to the other
    files of the folder and the sections in their order. Written atomically.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing results folder (with or without sections).

    Returns
    -------
    pathlib.Path
        ``folder/report.html``.
    """
    root = _folder(folder)
    rdir = root / REPORT_DIR
    if not rdir.is_dir():
        return _build(root, {})
    with _locked(rdir):
        return _build(root, _read_sections(rdir))
