"""Structure analysis of atomic models (issue 6)."""
from .neighbors import (RDF, coordination, nearest_neighbour_distance, neighbour_list, partial_coordination,
                        radial_distribution, shell_cutoff)
from .lattice import Lattice, LatticeFit, as_lattice, assign_sites, fit_lattice
from .strain import (StrainMap, atomic_strain, displacement_gradient, plane_axes, rotation_from_gradient,
                     strain_from_gradient, strain_map, to_crystal_frame, voigt)
