// The GENFIRE iteration (Pryor et al., Sci. Rep. 7, 10409 (2017)) on the oversampled grid.
//
// The object lives in a box of bz x by x bx voxels inside an oversampled grid of Nz x Ny x Nx
// (one side per axis, each about oversampling x the box side: a slab's grid is a slab too);
// everything outside the box is zero by the support constraint. The plan exploits that: its 3D
// FFTs are done axis by axis and skip every 1D transform whose input is known to be zero (forward)
// or whose output is not needed (inverse), so a full iteration costs about half of one r2c plus one
// c2r of the grid, and no grid-sized real array is ever held (memory: the Nz x Ny x (Nx/2+1) half
// spectrum and the box).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/fft_plans.hpp>

namespace aet {

struct FourierErrors {
    double error = 0;   // sum |F - F_meas| / sum |F_meas| over the constrained (non-free) points
    double rfree = -1;  // the same over the held-out points (-1 when there are none)
};

class GenfirePlan {
  public:
    // Grid sides >= 1 and every box side in 1..its grid side (checked: std::invalid_argument naming
    // it). The index_t overloads are the cubic grid n_grid^3.
    GenfirePlan(Shape3 grid, Shape3 box, int threads);
    GenfirePlan(index_t n_grid, Shape3 box, int threads);
    static void check(Shape3 grid, Shape3 box);
    static void check(index_t n_grid, Shape3 box);
    // Bytes a plan on the grid will hold (the half spectrum, per-thread FFT scratch).
    static double memory_bytes(Shape3 grid, int threads);
    static double memory_bytes(index_t n_grid, int threads);

    index_t n_grid() const { return std::max({Nz_, Ny_, Nx_}); }  // the largest side
    Shape3 grid() const { return Shape3{Nz_, Ny_, Nx_}; }
    Shape3 box() const { return box_; }
    int threads() const { return threads_; }
    // Bytes held by the plan (the half spectrum and the FFT scratch).
    std::size_t bytes() const;

    // spectrum = FFT3 of the box placed at the grid origin (the box origin (b/2) at index 0).
    void forward(const float* box);
    // box = the part inside the box of IFFT3(spectrum) / (Nz Ny Nx) (destroys the spectrum).
    void inverse(float* box);

    // One GENFIRE iteration, in place on `box` (indices outside the half spectrum and n_enforce
    // outside 0..n_points are refused with std::invalid_argument):
    //   F = FFT(box); errors measured at the points; F[idx[i]] = val[i] for i < n_enforce;
    //   box = IFFT(F), then positivity (if asked) and zero outside `support` (nullptr: whole box).
    FourierErrors iterate(float* box, const std::uint8_t* support, bool positivity,
                          const std::int64_t* idx, const cfloat* val, index_t n_points,
                          index_t n_enforce, const std::int64_t* free_idx, const cfloat* free_val,
                          index_t n_free);

    // Direct access to the half spectrum [Nz][Ny][Nx/2+1].
    cfloat* spectrum() { return reinterpret_cast<cfloat*>(spec_.data()); }

  private:
    index_t Nz_, Ny_, Nx_, nh_;
    Shape3 box_;
    int threads_;
    int tile_;
    FftwBuffer<fftwf_complex> spec_;
    FftPlan r2c_, c2r_, coly_fwd_, coly_inv_, colz_fwd_, colz_inv_;
    std::vector<index_t> zmap_, ymap_, xmap_;  // box index -> grid index (wrap-around)
    std::vector<std::uint8_t> zin_, yin_;      // grid index is inside the box

    void columns_y(bool forward_dir, bool only_box_out);
    void columns_z(bool forward_dir);
};

// ---------------------------------------------------------------------------------------------
// The whole GENFIRE algorithm (gridding, R-free split, resolution extension, momentum, best
// iterate, early stop, progress), so that a C++ host and aetcore.genfire give the same volume from
// the same inputs and seed.

// Every option of GENFIRE with its default: the one home of these defaults (the Python signature
// of aetcore.genfire and `aet config --defaults` read them from here through the bindings).
struct GenfireOptions {
    double oversampling = 3.0;          // Fourier grid side / volume side, per axis (>= 1); each rounded up to a 7-smooth even size
    int iterations = 100;               // maximum number of iterations (>= 1)
    bool positivity = true;             // negative voxels set to zero every iteration
    double interpolation_radius = 0.3;  // gridding radius, Fourier grid steps (> 0)
    int plane_upsampling = 2;           // extra zero-padding of the images before their FFT (1..8)
    double extension = 0.5;             // fraction of the iterations over which the enforced resolution grows ([0, 1])
    double momentum = 0.9;              // accelerated alternating projections ([0, 1); 0: plain error reduction)
    double rfree_fraction = 0.05;       // fraction of the measured points held out for R-free ([0, 0.5))
    int patience = 20;                  // early stop: iterations without a relative improvement of `tol` (>= 1)
    double tol = 1e-4;                  // relative improvement that counts for `patience` (>= 0)
    std::uint64_t seed = 0;             // the R-free draw (genfire_rfree_split)
    int threads = 0;                    // OpenMP threads; <= 0: every core the process may use
    // The automatic support (computed by the caller from low_resolution(); aetcore.genfire does it
    // with aetcore.steps.reconstruct.auto_support): the low-resolution pass and the mask's margin.
    int support_iterations = 10;        // iterations of the low-resolution pass (whole box as support)
    double support_frequency = 0.25;    // the pass enforces |k| <= this fraction of the largest measured |k|
    double support_margin = 6.0;        // Å the mask is dilated beyond the thresholded object (>= 0; at least 2 voxels)
    // The half-set FSC (aetcore.app.folder's reconstruct step): the even and odd images are each
    // reconstructed from scratch (independent of each other and of the full reconstruction) with
    // every option of the full run but a coarser Fourier grid and this many iterations. On the
    // shared particles (bench/fsc_cost.py) this keeps the FSC at 25-36 % of the full run's time and
    // its 0.143 and 0.5 crossings within 0.32 shells of two halves run like the full one (15
    // iterations on the full grid moved the low-dose wedge's 0.5 crossing by 6.7 shells). Objects
    // that leave the field of view keep the full run's grid (oversampling 2 moved the Ta film's 0.5
    // crossing by 2.5 shells).
    int half_set_iterations = 40;       // maximum iterations of each half-set reconstruction (>= 1)
    double half_set_oversampling = 2.0; // oversampling of the half sets of an object inside the field of view (>= 1)
};

// Throws std::invalid_argument naming the option unless every option is in its range.
void validate(const GenfireOptions& opt);

// The side of the oversampled Fourier grid along an axis where the volume has n voxels:
// ceil(oversampling n), rounded up to the next even 7-smooth number (2^a 3^b 5^c 7^d), a size FFTW
// transforms fast (sides beyond 2^40, which no memory holds, give 2^40 + 2).
index_t genfire_grid_size(index_t n, double oversampling);
// The oversampled grid of a box (nz, ny, nx): genfire_grid_size of each side, with no side below
// that of half the largest box side (ceil(n_max / 2)): a slab's grid is a slab, at most 2:1.
Shape3 genfire_grid_shape(Shape3 box, double oversampling);
// The smallest 7-smooth number >= n (n >= 1); even_only: the smallest even one.
index_t next_smooth(index_t n, bool even_only = false);

// The R-free split: `count` = llround(fraction * n) of the n gridded points, drawn by a partial
// Fisher-Yates shuffle of 0..n-1 driven by std::mt19937_64(seed): for i = 0 .. count-1,
// j = i + rng() % (n - i), swap(p[i], p[j]); the free points are p[0 .. count-1].
// Returns a mask of n bytes (1: held out). Identical on every platform for a given seed.
std::vector<std::uint8_t> genfire_rfree_split(index_t n, double fraction, std::uint64_t seed);

// Bytes GENFIRE needs for K images of ny x nx into a box `shape` (gridding records, the plan, the
// iterates), counted in double so that absurd sizes do not overflow.
double genfire_memory_bytes(index_t K, index_t ny, index_t nx, Shape3 shape, const GenfireOptions& opt);

// Called after every iteration with (iteration from 0, error, rfree (NaN without R-free));
// returning false stops the iteration (the best iterate so far is returned).
using GenfireProgress = std::function<bool(int iteration, double error, double rfree)>;

struct GenfireResult {
    Shape3 shape;
    std::vector<float> volume;         // shape.nz x ny x nx, the iterate with the lowest error once
                                       // every measured point was enforced
    std::vector<double> errors;        // per iteration, sum|F - F_meas| / sum|F_meas| (enforced set)
    std::vector<double> rfree;         // per iteration, the same on the held-out points (NaN: none)
    index_t grid_size = 0;             // the largest side of the oversampled grid
    Shape3 grid_shape;                 // its sides (Nz, Ny, Nx), genfire_grid_shape(shape, oversampling)
    index_t measured_points = 0;       // gridded points (enforced + free)
    index_t free_points = 0;           // of which held out
    bool cancelled = false;            // the progress callback asked to stop
    double seconds_iterations = 0;     // wall time of run()
};

// A GENFIRE reconstruction, FINUFFT style: the constructor does the expensive set-up once
// (validation, gridding, R-free split, ordering by |k|, the FFT plan); run() iterates.
//   tilts: K x ny x nx float32 (C order), origin at (ny/2, nx/2);
//   euler_rad: K x 3 ZYZ Euler angles (phi, theta, psi) in radians (CONVENTIONS.md);
//   shape: the reconstructed box (nz, ny, nx).
class Genfire {
  public:
    Genfire(const float* tilts, index_t K, index_t ny, index_t nx, const double* euler_rad, Shape3 shape,
            const GenfireOptions& opt);

    const GenfireOptions& options() const { return opt_; }
    Shape3 shape() const { return shape_; }
    index_t grid_size() const { return plan_->n_grid(); }  // the largest side
    Shape3 grid_shape() const { return plan_->grid(); }
    index_t measured_points() const { return index_t(e_idx_.size() + f_idx_.size()); }
    index_t free_points() const { return index_t(f_idx_.size()); }
    double seconds_gridding() const { return t_grid_; }
    double seconds_planning() const { return t_plan_; }

    // The low-resolution pass of the automatic support: options().support_iterations iterations
    // from zero with the whole box as support, enforcing the points with |k| <= support_frequency
    // times the largest enforced |k|. Returns the volume (shape()).
    std::vector<float> low_resolution();

    // The GENFIRE iteration. support: shape() bytes (nonzero: inside) or nullptr for the whole box;
    // initial: shape() floats or nullptr for zeros. Thread-safe for distinct Genfire objects only.
    GenfireResult run(const std::uint8_t* support, const float* initial,
                      const GenfireProgress& progress = GenfireProgress()) ;

  private:
    GenfireOptions opt_;
    Shape3 shape_;
    std::vector<std::int64_t> e_idx_, f_idx_;   // enforced points sorted by |k|, and the free points
    std::vector<cfloat> e_val_, f_val_;
    std::vector<float> e_kr_;                   // |k| of the enforced points, ascending
    std::unique_ptr<GenfirePlan> plan_;
    double t_grid_ = 0, t_plan_ = 0;

    index_t enforced_up_to(double kcut) const;  // number of enforced points with |k| <= kcut
};

// One call: Genfire(...).run(support, nullptr, progress). support nullptr: the whole box.
GenfireResult genfire(const float* tilts, index_t K, index_t ny, index_t nx, const double* euler_rad,
                      Shape3 shape, const std::uint8_t* support, const GenfireOptions& opt,
                      const GenfireProgress& progress = GenfireProgress());

}  // namespace aet
