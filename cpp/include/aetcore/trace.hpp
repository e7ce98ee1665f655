// Atom tracing (issue "From volume to atoms"): local maxima of a volume, sub-voxel positions by a
// 4th-order polynomial fit (or a Gaussian fit), and a minimum distance between atoms.
//
// Lengths are in voxels here; (z, y, x) are array indices of vol[z][y][x]. The Python layer converts
// to Å in the CONVENTIONS.md object frame.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>
#include <aetcore/common.hpp>

namespace aet {

// Status of a sub-voxel fit.
enum FitStatus : std::int8_t {
    fit_converged = 0,      // converged to a maximum within max_drift of the voxel maximum
    fit_not_maximum = 1,    // polynomial: Hessian not negative definite; Gaussian: amplitude or width <= 0
    fit_drifted = 2,        // the fitted maximum lies more than max_drift voxels from the voxel maximum
    fit_not_converged = 3,  // no convergence within the iteration limit (or too few voxels to fit)
    fit_left_volume = 4,    // the fit lies beyond half a voxel outside the volume (trace_atoms only)
};

struct Peak {
    index_t index = 0;  // linear index z * ny * nx + y * nx + x
    float value = 0.f;
};

// Local maxima above `threshold` (value > threshold and >= every voxel of the 26-neighbourhood inside the
// volume). A connected plateau of equal values that is a regional maximum yields one peak: the plateau
// voxel nearest its centroid (lowest linear index on ties). Sorted brightest first, lowest index on ties;
// the order does not depend on `threads`.
std::vector<Peak> find_local_maxima(const float* vol, Shape3 shape, float threshold, int threads);

struct FitResult {
    double z = 0, y = 0, x = 0;  // sub-voxel position (array index units); the voxel maximum unless converged
    std::int8_t status = fit_converged;
};

// Least-squares polynomial of total degree 4 (35 terms; degree 2 where the volume border leaves fewer than
// 5 distinct offsets along an axis) over the (2 radius + 1)^3 box around the voxel maximum `index`, then
// the argmax of the polynomial on a 3x upsampled grid of the +-1 voxel crop, refined by Newton steps.
// At most `max_iterations` Newton steps.
FitResult fit_polynomial(const float* vol, Shape3 shape, index_t index, int radius, double max_drift,
                         int max_iterations = 50);

// Levenberg-Marquardt fit of B + H * (voxel mean of exp(-|r - c|^2 / (2 s^2))) over the same box
// (the voxel means are exact, with error functions, as in render_atoms). Starts from `start`. At most
// 4 * `max_iterations` Levenberg-Marquardt steps (it converges linearly, Newton quadratically).
FitResult fit_gaussian(const float* vol, Shape3 shape, index_t index, int radius, double max_drift,
                       const FitResult& start, int max_iterations = 50);

// Every option of atom tracing with its default: the one home of these defaults (aetcore.trace_atoms'
// signature and the [trace] section of `aet config --defaults` read them from here).
struct TraceOptions {
    double threshold = std::numeric_limits<double>::quiet_NaN();  // volume units; NaN: threshold_fraction x max
    double threshold_fraction = 0.1;  // the automatic threshold, a fraction of the volume's maximum
    index_t max_atoms = 0;            // <= 0: no cap
    double pixel_size = 1.0;          // Å per voxel (min_distance is in Å)
    double min_distance = 2.0;        // Å; 0: no minimum distance
    int fit = 1;                      // 0 none (voxel maxima), 1 polynomial, 2 polynomial then Gaussian
    double max_drift = 1.5;           // voxels: on noisy light atoms (Fe next to Pt) the voxel maximum is
                                      // often a noise voxel more than one voxel from the peak the fit finds
    int fit_radius = 2;               // half-width of the fitting box, voxels (>= 2 with a fit, >= 1 without)
    int max_iterations = 50;          // Newton steps of the polynomial fit (the Gaussian fit: 4x as many)
    int threads = 0;
};

// Throws std::invalid_argument naming the option unless every option is in its range.
void validate(const TraceOptions& opt);

// The threshold trace_atoms uses: opt.threshold, or threshold_fraction x the volume's maximum when NaN.
double resolve_threshold(const float* vol, Shape3 shape, const TraceOptions& opt);

struct TraceResult {
    std::vector<index_t> voxel;        // n x 3, (z, y, x) of the voxel maxima
    std::vector<double> position;      // n x 3, (z, y, x) sub-voxel positions, array index units
    std::vector<float> intensity;      // n, value at the voxel maximum
    std::vector<std::int8_t> status;   // n
    index_t size() const { return index_t(intensity.size()); }
};

// Checks (validate; the volume is at least 3 voxels along every axis and finite; the memory of the
// fit boxes), then local maxima above resolve_threshold -> sub-voxel fits (in parallel; a fit that
// failed, or left the volume (status 4), keeps its voxel maximum, so every atom lies inside the
// volume) -> greedy minimum distance in brightness order on the
// fitted positions (a cell grid; the brighter peak wins) -> at most max_atoms atoms, brightest first.
TraceResult trace_atoms(const float* vol, Shape3 shape, const TraceOptions& opt);

}  // namespace aet
