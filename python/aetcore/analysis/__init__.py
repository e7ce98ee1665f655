"""Structure analysis of atomic models (issue 6): what materials scientists publish from an atomic
model.

Modules: :mod:`~aetcore.analysis.neighbors` (neighbour lists, RDF, coordination),
:mod:`~aetcore.analysis.lattice` (ideal lattice nearest the atoms, sites, displacements),
:mod:`~aetcore.analysis.strain` (Gaussian-smoothed strain tensor per atom and on planes),
:mod:`~aetcore.analysis.order` (L1_0/L1_2 local order, phases, Warren–Cowley, anti-sites, swaps,
anti-phase boundaries), :mod:`~aetcore.analysis.grains` (connected regions of one phase),
:mod:`~aetcore.analysis.bond_order` (Steinhardt q_l) and :mod:`~aetcore.analysis.plots` (figures);
:mod:`~aetcore.analysis.track`: time series (4D). The body of ``aet analyze``,
:func:`analyze_folder`, is :mod:`aetcore.app.analyze` (also importable from here).
"""
from .neighbors import (RDF, coordination, nearest_neighbour_distance, neighbour_list, partial_coordination,
                        radial_distribution, shell_cutoff)
from .lattice import Lattice, LatticeFit, as_lattice, assign_sites, fit_lattice
from .strain import (StrainMap, atomic_strain, displacement_gradient, plane_axes, rotation_from_gradient,
                     strain_from_gradient, strain_map, to_crystal_frame, voigt)
from .order import (PHASES, VARIANTS, ChemicalOrder, antiphase_boundaries, antisite_defects, chemical_order,
                    classify_phases, fcc_shell_offsets, local_order, site_neighbours, swap_defects,
                    translation_variants, warren_cowley)
from .grains import Grains, find_grains, site_pairs
from .bond_order import (CUTOFF_FACTOR, FCC_Q4, FCC_Q6, REFERENCE, BondOrder, bond_order, global_steinhardt,
                         neighbour_bonds, normalized_order, steinhardt)

_PLOTS = ("strain_map_figure", "order_map_figure", "phase_map_figure", "rdf_figure")


def __getattr__(name):
    # the figure functions import matplotlib: only when first asked for
    if name in _PLOTS:
        from . import plots
        return getattr(plots, name)
    if name == "analyze_folder":  # the folder runner lives with the other runners, in app/
        from ..app.analyze import analyze_folder
        return analyze_folder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RDF", "coordination", "nearest_neighbour_distance", "neighbour_list", "partial_coordination",
           "radial_distribution", "shell_cutoff", "Lattice", "LatticeFit", "as_lattice", "assign_sites",
           "fit_lattice", "StrainMap", "atomic_strain", "displacement_gradient", "plane_axes",
           "rotation_from_gradient", "strain_from_gradient", "strain_map", "to_crystal_frame", "voigt",
           "PHASES", "VARIANTS", "ChemicalOrder", "antiphase_boundaries", "antisite_defects", "chemical_order",
           "classify_phases", "fcc_shell_offsets", "local_order", "site_neighbours", "swap_defects",
           "translation_variants", "warren_cowley", "Grains", "find_grains", "site_pairs", "CUTOFF_FACTOR",
           "FCC_Q4", "FCC_Q6", "REFERENCE", "BondOrder",
           "bond_order", "global_steinhardt", "neighbour_bonds", "normalized_order", "steinhardt",
           "analyze_folder", *_PLOTS]
