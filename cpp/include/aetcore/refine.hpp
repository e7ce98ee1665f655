// Refinement of an atomic model against a measured tilt series (CONVENTIONS.md forward model).
//
// Loss L = sum_k sum_pixels (s P_k - b_k)^2 / 2, P_k the exact erf pixel model of the atoms
// (see atoms.hpp), s a global scale (given, or solved in closed form s = <P,b>/<P,P>). Returns L,
// sum |s P - b| (for R1) and the analytic gradient with respect to every atom position (voxels),
// every species' height H and width sigma (voxels) and B (Å², through sigma with blur fixed), and
// optionally the Gauss-Newton 3x3 block per atom, sum over pixels of dP/dr dP/dr^T (voxels,
// without the scale). Everything is float64 inside. Lengths in voxels.
#pragma once
#include <cstdint>
#include <functional>
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
    std::vector<double> gn_height;   // n_species, sum (dP/dH_s)^2 (with want_jtj), the Gauss-Newton diagonal of H_s
    std::vector<double> gn_sigma;    // n_species, sum (dP/dsigma_s)^2 (with want_jtj), sigma in voxels
                                     // (the "meat" of a heteroscedasticity-consistent sandwich estimate)
    std::vector<double> rhess;       // n x 6, sum over pixels of r d2(s P)/dr2 (r = s P - b), voxels: the
                                     // observed (Newton) Hessian block of L is s^2 jtj + rhess
};

// Every option of the refinement with its default: the one home of these defaults (the signature of
// aetcore.steps.refine.refine, the [refine] section of `aet config --defaults` and refine_atoms read
// them from here), including the bounds of the parameters and the settings of the bounded L-BFGS.
struct RefineOptions {
    double max_shift = 1.0;          // Å, per coordinate, from the start
    bool refine_positions = true;
    bool refine_heights = true;
    bool refine_b = true;
    int iterations = 25;             // largest number of L-BFGS iterations (preconditioned: see below)
    // Scale every position coordinate by the square root of its Gauss-Newton curvature at the start
    // (the diagonal of s^2 J^T J of its atom), so that the L-BFGS sees light and heavy atoms, and
    // the z axis and the tilt plane, on one scale (a diagonal preconditioner; the minimiser is the same).
    bool precondition = true;
    double cutoff = 5.0;             // atoms evaluated within cutoff sigmas
    std::string precision = "sandwich";  // "sandwich" (per-pixel noise) or "curvature"
    bool refine_angles = false;      // also refine every image's tilt angle
    double angle_range = 2.0;        // degrees per round
    int angle_rounds = 3;
    double b_min = 0.1, b_max = 50.0;  // bounds of the refined B-factors, Å^2
    double height_min = 1e-6;        // lower bound of the heights, relative to the start
    int lbfgs_memory = 20;           // bounded L-BFGS: stored pairs (s, y)
    // stop when (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= lbfgs_ftol or when the projected
    // gradient's largest entry <= lbfgs_gtol (f is the loss divided by sum b^2 / 2)
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

// The observed (Newton) curvature of the loss around an atom relative to its Gauss-Newton curvature
// (RefineResult::curvature_ratio, the smallest eigenvalue of A^-1/2 H A^-1/2): below
// kPrecisionReliableCurvature the loss is too far from quadratic for a curvature-based precision to be
// trusted (RefineResult::precision_reliable is 0); the sandwich's bread floors the eigenvalues of
// A^-1/2 H A^-1/2 at kPrecisionCurvatureFloor, so no atom's standard deviation exceeds the Gauss-Newton
// one by more than 1 / kPrecisionCurvatureFloor along any direction. The floor is measured, not derived:
// bench/precision.py (bench/README.md, "precision.py") and tests/steps/test_refine_precision.py.
constexpr double kPrecisionReliableCurvature = 0.5;
constexpr double kPrecisionCurvatureFloor = 0.25;

// Called after every iteration of refine_atoms with its number (1, 2, ...) and the loss L; return
// false to stop (the result is then that of the last iterate, with `cancelled` set).
using RefineProgress = std::function<bool(int iteration, double loss)>;

struct RefineResult {
    std::vector<double> positions;   // n x 3, refined (x, y, z), Å
    std::vector<double> heights;     // per species; the closed-form scale folded in (see refine_atoms)
    std::vector<double> b_factors;   // per species, Å^2
    double scale = 1.0;              // the global scale of the returned model
    double r1_before = 0.0, r1_after = 0.0;  // sum |s P - b| / sum |b|
    std::vector<double> loss_history;  // L at the start and after every iteration
    int iterations = 0;
    int evaluations = 0;             // objective evaluations of the minimiser
    std::vector<double> precision;   // n x 3, standard deviation of every coordinate, Å (inf: singular block)
    std::vector<double> curvature_ratio;  // n, smallest eigenvalue of A^-1/2 H A^-1/2 (1: quadratic; NaN: singular A)
    std::vector<std::uint8_t> precision_reliable;  // n, 1 where curvature_ratio >= kPrecisionReliableCurvature
    double noise_sigma = 0.0;        // residual standard deviation per pixel, sqrt(2 L / (N - p))
    std::string message;             // why the minimiser stopped
    bool cancelled = false;          // the progress callback returned false
};

// The whole refinement of an atomic model against a measured tilt series: minimise
// L = sum (s P - b)^2 / 2 (refine_objective) over, as the options ask, the position offsets from the
// start (Å, each within +-max_shift), the heights relative to the start (H / H_0 >= height_min) and
// the B-factors (Å^2, in [b_min, b_max]; the starting B are clipped into that range), the blur fixed.
// The minimiser is minimize_bounded_lbfgs (aetcore/bounded_lbfgs.hpp) on L / (sum b^2 / 2) with
// lbfgs_memory, lbfgs_ftol, lbfgs_gtol and `iterations`. Then, at the result:
//  - scale: with scale == 0 the closed form s = <P, b> / <P, P> at every evaluation; when heights are
//    refined it is folded into the returned heights (H s) and the result's scale is 1, else the
//    result's scale is s. A positive scale is kept fixed;
//  - noise_sigma^2 = 2 L / (N - p), N the number of pixels, p the number of refined parameters (+1
//    for a closed-form scale);
//  - per atom, A = J^T J and M = J^T diag(r^2) J (the 3x3 blocks of the derivatives of s P per Å,
//    refine_objective's jtj and jtrrj); precision = sqrt(diag(cov)) with cov = A^-1 M A^-1 N / (N - p)
//    ("sandwich", HC1) or noise_sigma^2 A^-1 ("curvature"); inf where det A <= 1e-300 max(1, max|A|)^3.
// positions: n x 3 (x, y, z), Å from the origin; species: n labels into heights/b_factors; blur and
// pixel_size in Å; rotations and measured (K x ndy x ndx float32) as refine_objective. Throws
// std::invalid_argument naming the argument (validate(opt), "positions", "species", "heights",
// "b_factors", "blur", "rotations", "tilts", "pixel_size", "scale") and aet::MemoryError.
RefineResult refine_atoms(const double* positions, const std::int32_t* species, index_t n,
                          const std::vector<double>& heights, const std::vector<double>& b_factors, double blur,
                          const std::vector<Mat3>& rotations, index_t ndy, index_t ndx, const float* measured,
                          double pixel_size, double scale, const RefineOptions& opt,
                          const RefineProgress& progress = RefineProgress());

// d/dc and d/ds of gaussian_cell_means (differences of Gaussians): with t± = i ± 0.5 - c and
// phi(t) = exp(-t^2 / (2 s^2)) / (sqrt(2 pi) s): dE/dc = phi(t-) - phi(t+),
// dE/ds = (t- phi(t-) - t+ phi(t+)) / s.
void gaussian_cell_mean_derivs(double c, double s, index_t i0, index_t n, double* d_c, double* d_s);

}  // namespace aet
