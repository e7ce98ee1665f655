// Refinement of an atomic model against a measured tilt series (CONVENTIONS.md forward model).
//
// Loss L = sum_k sum_pixels (s P_k - b_k)^2 / 2, P_k the exact erf pixel model of the atoms
// (see atoms.hpp), s a global scale (given, or solved in closed form s = <P,b>/<P,P>). Returns L,
// sum |s P - b| (for R1) and the analytic gradient with respect to every atom position (voxels),
// every species' height H and width sigma (voxels) and B (Å², through sigma with blur fixed), and
// optionally the Gauss-Newton 3x3 block per atom, sum over pixels of dP/dr dP/dr^T (voxels,
// without the scale). Everything is float64 inside. Lengths in voxels.
#pragma once
#include <string>
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

// Every option of the refinement with its default: the one home of these defaults (the signature of
// aetcore.steps.refine.refine and the [refine] section of `aet config --defaults` read them from
// here). The minimiser itself (scipy's L-BFGS-B over these parameters) runs in Python today; its
// settings live here too, so that a C++ port starts from the same numbers.
struct RefineOptions {
    double max_shift = 1.0;          // Å, per coordinate, from the start
    bool refine_positions = true;
    bool refine_heights = true;
    bool refine_b = true;
    int iterations = 50;             // L-BFGS-B iterations
    double cutoff = 5.0;             // atoms evaluated within cutoff sigmas
    std::string precision = "sandwich";  // "sandwich" (per-pixel noise) or "curvature"
    bool refine_angles = false;      // also refine every image's tilt angle
    double angle_range = 2.0;        // degrees per round
    int angle_rounds = 3;
    double b_min = 0.1, b_max = 50.0;  // bounds of the refined B-factors, Å^2
    double height_min = 1e-6;        // lower bound of the heights, relative to the start
    int lbfgs_memory = 20;           // L-BFGS-B: stored corrections (maxcor)
    double lbfgs_ftol = 1e-15, lbfgs_gtol = 1e-12;
    int threads = 0;
};

// Throws std::invalid_argument naming the option unless every option is in its range.
void validate(const RefineOptions& opt);

// sigma (voxels) of an atom of Debye-Waller factor b (Å^2) blurred by `blur` (Å, >= 0) on a grid of
// pixel_size Å: sigma^2 = b / (8 pi^2 p^2) + (blur / p)^2. Throws std::invalid_argument naming
// "b_factors/blur" when that is not positive.
double sigma_from_b(double b, double blur, double pixel_size);

// measured: K x ndy x ndx float32 (K = rotations.size()). scale <= 0 means the closed-form scale.
// Checked: validate_atoms, the sizes, a finite scale and measured series, a positive pixel_size,
// and the memory (aet::MemoryError).
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
