// Gaussian atoms (CONVENTIONS.md): projections at any Euler angles, and rendering into a volume.
//
// An atom of species s is H_s exp(-|r - r_i|^2 / (2 sigma_s^2)); a pixel (voxel) holds the mean of the
// projection (density) over its square (cube), computed exactly with error functions, so the total
// intensity of an atom is H_s (2 pi)^{3/2} sigma_s^3 in every projection. Lengths in voxels here.
#pragma once
#include <cstdint>
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/geometry.hpp>

namespace aet {

struct AtomSet {
    const double* positions = nullptr;   // n x 3, (x, y, z) in voxels relative to the origin n//2
    const std::int32_t* species = nullptr;  // n, index into heights/sigmas
    index_t n = 0;
    std::vector<double> heights;  // H_s per species
    std::vector<double> sigmas;   // sigma_s per species, voxels
    double cutoff = 5.0;          // atoms are evaluated within cutoff * sigma
};

// Throws std::invalid_argument naming the member ("positions", "species", "heights", "sigmas",
// "cutoff") unless: positions (n x 3) and species (n) are given when n > 0, positions and heights
// are finite, every species index is in 0 .. heights.size() - 1, sigmas has one finite positive entry
// per height, cutoff is finite and positive, and each atom's amplitude and window stay finite.
void validate_atoms(const AtomSet& atoms);

// out[k] (ndy x ndx) = projection of the atoms along rotations[k]. Overwrites out.
// Inputs are checked (validate_atoms, "ndy", "ndx", "rotations", "threads"); the allocating overload
// estimates its output first (aet::MemoryError, aetcore/memory.hpp).
void project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                   index_t ndx, float* out, int threads);
// The same, returning a new (rotations.size(), ndy, ndx) array.
std::vector<float> project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                                 index_t ndx, int threads);

// vol (shape) = the atoms rendered on the voxel grid, each voxel the mean over its cube.
void render_atoms(const AtomSet& atoms, Shape3 shape, float* vol, int threads);
// The same, returning a new volume of `shape`.
std::vector<float> render_atoms(const AtomSet& atoms, Shape3 shape, int threads);

// Window sums of every atom's footprint for every species (the per-atom evidence of the tilt series,
// python/aetcore/steps/evidence.py). With f_isk the pixel-averaged projection along rotations[k] of an
// atom of species s and integrated intensity amplitudes[s] (sigma sigmas[s]) at positions[i], on the
// pixels of the (2 half + 1)^2 window centred on the pixel nearest the atom's detector position (pixels
// off the detector skipped):
//   a[i * S + s]           = sum_k sum_pixels images[k] * weights[k] * f_isk      (the product in float)
//   c[(i * S + s) * S + t] = sum_k sum_pixels weights[k] * f_isk * f_itk
// with S = sigmas.size(). Positions (n x 3, (x, y, z)) and sigmas in pixels, relative to the origin
// ndx/2, ndy/2 of each image (CONVENTIONS.md); images and weights are (rotations.size(), ndy, ndx).
// Overwrites a (n S) and c (n S S). Throws std::invalid_argument naming the argument ("positions",
// "amplitudes", "sigmas", "half", "images", "weights", "rotations", "a", "c") when one is missing,
// non-finite or of the wrong size; OpenMP over atoms.
void footprint_sums(const double* positions, index_t n, const std::vector<Mat3>& rotations, index_t ndy,
                    index_t ndx, const std::vector<double>& amplitudes, const std::vector<double>& sigmas,
                    index_t half, const float* images, const float* weights, double* a, double* c, int threads);

// Mean over the unit cells [i - 0.5, i + 0.5] of exp(-(x - c)^2 / (2 s^2)) / (sqrt(2 pi) s), for
// i = i0 .. i0 + n - 1: the exact pixel integral of a normalised 1D Gaussian.
void gaussian_cell_means(double c, double s, index_t i0, index_t n, double* out);

}  // namespace aet
