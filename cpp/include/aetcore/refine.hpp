// Refinement of an atomic model against a measured tilt series (CONVENTIONS.md forward model).
//
// Loss L = sum_k sum_pixels (s P_k - b_k)^2 / 2, P_k the exact erf pixel model of the atoms
// (see atoms.hpp), s a global scale (given, or solved in closed form s = <P,b>/<P,P>). Returns L,
// sum |s P - b| (for R1) and the analytic gradient with respect to every atom position (voxels),
// every species' height H and width sigma (voxels) and B (Å², through sigma with blur fixed), and
// optionally the Gauss-Newton 3x3 block per atom, sum over pixels of dP/dr dP/dr^T (voxels,
// without the scale). Everything is float64 inside. Lengths in voxels.
#pragma once
#include <vector>
#include <aetcore/atoms.hpp>
#include <aetcore/common.hpp>
#include <aetcore/geometry.hpp>

namespace aet {

struct RefineEval {
    double loss = 0.0;            // sum (s P - b)^2 / 2
    double abs_residual = 0.0;    // sum |s P - b|
    double scale = 1.0;           // the scale used
    double pb = 0.0, pp = 0.0;    // <P, b>, <P, P>
    std::vector<double> grad_pos;    // n x 3, dL/d(x, y, z) in voxels
    std::vector<double> grad_height; // n_species, dL/dH_s
    std::vector<double> grad_sigma;  // n_species, dL/dsigma_s (sigma in voxels)
    std::vector<double> grad_b;      // n_species, dL/dB_s (B in Å²), via sigma^2 = B/(8 pi^2 p^2) + blur^2
    std::vector<double> jtj;         // n x 6 (xx, xy, xz, yy, yz, zz) of sum dP/dr dP/dr^T, voxels
    std::vector<double> jtrrj;       // n x 6, the same with each pixel weighted by its squared residual
                                     // (the "meat" of a heteroscedasticity-consistent sandwich estimate)
};

// measured: K x ndy x ndx float32 (K = rotations.size()). scale <= 0 means the closed-form scale.
// pixel_size (Å) is used only to convert dL/dsigma to dL/dB. OpenMP over angles (static schedule)
// with per-thread accumulators reduced in thread order: deterministic for a given thread count.
RefineEval refine_objective(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                            index_t ndx, const float* measured, double scale, double pixel_size,
                            bool want_grad, bool want_jtj, int threads);

// d/dc and d/ds of gaussian_cell_means (differences of Gaussians): with t± = i ± 0.5 - c and
// phi(t) = exp(-t^2 / (2 s^2)) / (sqrt(2 pi) s): dE/dc = phi(t-) - phi(t+),
// dE/ds = (t- phi(t-) - t+ phi(t+)) / s.
void gaussian_cell_mean_derivs(double c, double s, index_t i0, index_t n, double* d_c, double* d_s);

}  // namespace aet
