"""The results folder's ``report.html``: sections of HTML and PNG figures written by ``aet run``,
``aet analyze`` and ``aet track`` into the same folder.

:mod:`~aetcore.report.page` writes the sections and the page (:func:`add_section`,
:func:`remove_section`, :func:`build_report`), :mod:`~aetcore.report.figures` makes the figures and
:mod:`~aetcore.report.run` the sections of ``aet run``; the folder layout of the report is described
in :mod:`~aetcore.report.page`.
"""
from .page import REPORT_DIR, REPORT_FILE, add_section, build_report, remove_section
from .figures import (atoms_figure, convergence_figure, fsc_figure, intensity_histogram_figure, orthoslices_figure,
                      projections_figure, shifts_figure, species_intensity_stats, summary_html)
from .run import RUN_SECTIONS, run_figures, write_run_report

__all__ = ["add_section", "remove_section", "build_report", "REPORT_DIR", "REPORT_FILE",
           "orthoslices_figure", "projections_figure", "species_intensity_stats", "intensity_histogram_figure",
           "convergence_figure", "fsc_figure", "atoms_figure", "shifts_figure", "summary_html",
           "run_figures", "write_run_report", "RUN_SECTIONS"]
