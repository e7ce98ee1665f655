"""Structure analysis of atomic models (issue 6)."""
from .neighbors import (RDF, coordination, nearest_neighbour_distance, neighbour_list, partial_coordination,
                        radial_distribution, shell_cutoff)
from .lattice import Lattice, LatticeFit, as_lattice, assign_sites, fit_lattice
from .strain import (StrainMap, atomic_strain, displacement_gradient, plane_axes, rotation_from_gradient,
                     strain_from_gradient, strain_map, to_crystal_frame, voigt)
from .order import (PHASES, VARIANTS, ChemicalOrder, antiphase_boundaries, antisite_defects, chemical_order,
                    classify_phases, fcc_shell_offsets, local_order, site_neighbours, swap_defects,
                    translation_variants, warren_cowley)
from .grains import Grains, find_grains, site_pairs
