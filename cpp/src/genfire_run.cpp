// The GENFIRE algorithm around the plan's iteration: options, grid size, R-free split, resolution
// extension, momentum, best iterate, early stop and progress (genfire.hpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

#include <aetcore/genfire.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/gridding.hpp>
#include <aetcore/memory.hpp>

namespace aet {
namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

[[noreturn]] void bad(const std::string& name, const std::string& what, double got) {
    throw std::invalid_argument(name + ": expected " + what + ", got " + num(got));
}

}  // namespace

void validate(const GenfireOptions& o) {
    if (!(o.oversampling >= 1.0) || !std::isfinite(o.oversampling)) bad("oversampling", "a value >= 1", o.oversampling);
    if (o.iterations < 1) bad("iterations", "a value >= 1", o.iterations);
    if (!(o.interpolation_radius > 0) || !std::isfinite(o.interpolation_radius))
        bad("interpolation_radius", "a positive number", o.interpolation_radius);
    if (o.plane_upsampling < 1 || o.plane_upsampling > 8) bad("plane_upsampling", "1..8", o.plane_upsampling);
    if (!(o.extension >= 0 && o.extension <= 1)) bad("extension", "a fraction in [0, 1]", o.extension);
    if (!(o.momentum >= 0 && o.momentum < 1)) bad("momentum", "a value in [0, 1)", o.momentum);
    if (!(o.rfree_fraction >= 0 && o.rfree_fraction < 0.5))
        bad("rfree_fraction", "a fraction in [0, 0.5)", o.rfree_fraction);
    if (o.patience < 1) bad("patience", "a value >= 1", o.patience);
    if (!(o.tol >= 0) || !std::isfinite(o.tol)) bad("tol", "a finite value >= 0", o.tol);
    if (o.support_iterations < 1) bad("support_iterations", "a value >= 1", o.support_iterations);
    if (!(o.support_frequency > 0 && o.support_frequency <= 1))
        bad("support_frequency", "a fraction in (0, 1]", o.support_frequency);
    if (!(o.support_margin >= 0) || !std::isfinite(o.support_margin))
        bad("support_margin", "a finite value >= 0", o.support_margin);
    if (o.half_set_iterations < 1) bad("half_set_iterations", "a value >= 1", o.half_set_iterations);
    if (!(o.half_set_oversampling >= 1) || !std::isfinite(o.half_set_oversampling))
        bad("half_set_oversampling", "a finite value >= 1", o.half_set_oversampling);
    resolve_threads(o.threads);
}

index_t next_smooth(index_t n, bool even_only) {
    if (n < 1) n = 1;
    for (index_t m = n;; ++m) {
        if (even_only && (m % 2)) continue;
        index_t r = m;
        for (index_t p : {2, 3, 5, 7})
            while (r % p == 0) r /= p;
        if (r == 1) return m;
    }
}

index_t genfire_grid_size(index_t n, double oversampling) {
    if (n < 1) throw std::invalid_argument("volume_shape: expected sides >= 1, got " + std::to_string(n));
    if (!(oversampling >= 1.0) || !std::isfinite(oversampling)) bad("oversampling", "a value >= 1", oversampling);
    const double raw = std::ceil(oversampling * double(n) - 1e-9);
    // Beyond 2^40 no machine holds the grid (the memory check refuses it): returned as a plain even
    // number, which keeps the search below and the integer conversion bounded.
    if (raw > double(index_t(1) << 40)) return (index_t(1) << 40) + 2;
    return next_smooth(index_t(raw), true);
}

Shape3 genfire_grid_shape(Shape3 box, double oversampling) {
    // A thin axis keeps at least the grid of half the largest side: an object thin along an axis
    // that the slice planes cross needs that sampling for the gridding (a node's distance from its
    // plane is an error proportional to the object's extent over the grid side); measured on a slab
    // of 24 x 32 x 64 voxels, tests/steps/test_reconstruct.py.
    const index_t floor_side = (std::max({box.nz, box.ny, box.nx}) + 1) / 2;
    return Shape3{genfire_grid_size(std::max(box.nz, floor_side), oversampling),
                  genfire_grid_size(std::max(box.ny, floor_side), oversampling),
                  genfire_grid_size(std::max(box.nx, floor_side), oversampling)};
}

std::vector<std::uint8_t> genfire_rfree_split(index_t n, double fraction, std::uint64_t seed) {
    std::vector<std::uint8_t> free(std::size_t(std::max<index_t>(n, 0)), 0);
    const index_t count = std::min<index_t>(n, index_t(std::llround(fraction * double(n))));
    if (count <= 0) return free;
    std::vector<index_t> p(static_cast<std::size_t>(n));
    std::iota(p.begin(), p.end(), index_t(0));
    std::mt19937_64 rng(seed);
    for (index_t i = 0; i < count; ++i) {
        const index_t j = i + index_t(rng() % std::uint64_t(n - i));
        std::swap(p[std::size_t(i)], p[std::size_t(j)]);
        free[std::size_t(p[std::size_t(i)])] = 1;
    }
    return free;
}

double genfire_memory_bytes(index_t K, index_t ny, index_t nx, Shape3 shape, const GenfireOptions& opt) {
    // The grid follows the box, one side per axis (genfire_grid_shape); sides below 1 are counted as 1
    // (the constructor refuses them).
    const Shape3 grid = genfire_grid_shape(Shape3{std::max<index_t>(shape.nz, 1), std::max<index_t>(shape.ny, 1),
                                                  std::max<index_t>(shape.nx, 1)},
                                           opt.oversampling);
    GriddingOptions go;
    go.radius = opt.interpolation_radius;
    go.upsample = opt.plane_upsampling;
    go.threads = opt.threads;
    // Three phases that do not overlap (Genfire's constructor, then run()): the gridding; the sorting
    // of its output (the output, 24 bytes a point, its enforced/free copies, 20, the order and the
    // R-free mask, 9); the iteration (the plan, the copies, and the box, current, previous and best
    // iterates and the support: 17 bytes a voxel). Plus the tilt series the caller holds.
    const double half = double(grid.nz) * double(grid.ny) * double(grid.nx / 2 + 1);
    const double points = std::min(gridding_points_bound(K, grid, go), half);
    const double vol = double(shape.nz) * double(shape.ny) * double(shape.nx);
    const double gridding = gridding_memory_bytes(K, grid, go);
    const double sorting = points * (24.0 + 20.0 + 9.0);
    const double iterating = GenfirePlan::memory_bytes(grid, opt.threads) + points * 20.0 + vol * (4.0 * 4 + 1);
    return std::max({gridding, sorting, iterating}) + 4.0 * double(K) * double(ny) * double(nx);
}

Genfire::Genfire(const float* tilts, index_t K, index_t ny, index_t nx, const double* euler_rad, Shape3 shape,
                 const GenfireOptions& opt)
    : opt_(opt), shape_(shape) {
    validate(opt);
    if (K < 1) throw std::invalid_argument("tilts: expected at least one image, got 0");
    if (ny < 1 || nx < 1)
        throw std::invalid_argument("tilts: expected non-empty images, got " + std::to_string(ny) + " x " +
                                    std::to_string(nx));
    if (shape.nz < 1 || shape.ny < 1 || shape.nx < 1)
        throw std::invalid_argument("volume_shape: expected sides >= 1, got (" + std::to_string(shape.nz) + ", " +
                                    std::to_string(shape.ny) + ", " + std::to_string(shape.nx) + ")");
    const std::size_t n_pix = std::size_t(K) * std::size_t(ny) * std::size_t(nx);
    bool any = false;
    for (std::size_t i = 0; i < n_pix; ++i) {
        if (!std::isfinite(tilts[i]))
            throw std::invalid_argument("tilts: expected finite values, got " + num(tilts[i]) + " at flat index " +
                                        std::to_string(i));
        any = any || tilts[i] != 0.f;
    }
    if (!any) throw std::invalid_argument("tilts: every image is zero; nothing to reconstruct");
    for (index_t i = 0; i < 3 * K; ++i)
        if (!std::isfinite(euler_rad[i])) throw std::invalid_argument("angles: expected finite values");
    const Shape3 grid = genfire_grid_shape(shape, opt.oversampling);
    if (std::max({grid.nz, grid.ny, grid.nx}) < std::max(ny, nx))
        throw std::invalid_argument("oversampling: the grid would be smaller than the images");
    check_memory(genfire_memory_bytes(K, ny, nx, shape, opt),
                 "GENFIRE on a " + std::to_string(grid.nz) + " x " + std::to_string(grid.ny) + " x " +
                     std::to_string(grid.nx) + " grid");

    const auto t0 = clock_type::now();
    GriddingOptions go;
    go.radius = opt.interpolation_radius;
    go.upsample = opt.plane_upsampling;
    go.threads = opt.threads;
    GriddedData g = grid_projections(tilts, K, ny, nx, euler_zyz_many(euler_rad, std::size_t(K)), grid, go);
    const index_t n = index_t(g.index.size());
    if (n == 0)
        throw std::invalid_argument("tilts: no measured Fourier sample fell within interpolation_radius of the grid");
    // Hold out the R-free points, then order the rest by |k| (stable) so the enforced set is a prefix.
    const std::vector<std::uint8_t> free = genfire_rfree_split(n, opt.rfree_fraction, opt.seed);
    std::vector<index_t> kept;
    kept.reserve(std::size_t(n));
    for (index_t i = 0; i < n; ++i) {
        if (free[std::size_t(i)]) {
            f_idx_.push_back(g.index[std::size_t(i)]);
            f_val_.push_back(g.value[std::size_t(i)]);
        } else {
            kept.push_back(i);
        }
    }
    std::stable_sort(kept.begin(), kept.end(),
                     [&](index_t a, index_t b) { return g.radius[std::size_t(a)] < g.radius[std::size_t(b)]; });
    e_idx_.reserve(kept.size());
    e_val_.reserve(kept.size());
    e_kr_.reserve(kept.size());
    for (index_t i : kept) {
        e_idx_.push_back(g.index[std::size_t(i)]);
        e_val_.push_back(g.value[std::size_t(i)]);
        e_kr_.push_back(g.radius[std::size_t(i)]);
    }
    g = GriddedData();
    t_grid_ = seconds_since(t0);
    const auto t1 = clock_type::now();
    plan_ = std::make_unique<GenfirePlan>(grid, shape, opt.threads);
    t_plan_ = seconds_since(t1);
}

index_t Genfire::enforced_up_to(double kcut) const {
    return index_t(std::upper_bound(e_kr_.begin(), e_kr_.end(), kcut,
                                    [](double k, float r) { return k < double(r); }) - e_kr_.begin());
}

std::vector<float> Genfire::low_resolution() {
    std::vector<float> box(std::size_t(shape_.size()), 0.f);
    const double kmax = e_kr_.empty() ? 0.0 : double(e_kr_.back());
    const index_t n_low = enforced_up_to(opt_.support_frequency * kmax);
    for (int it = 0; it < opt_.support_iterations; ++it)
        plan_->iterate(box.data(), nullptr, opt_.positivity, e_idx_.data(), e_val_.data(), index_t(e_idx_.size()),
                       n_low, f_idx_.data(), f_val_.data(), index_t(f_idx_.size()));
    return box;
}

GenfireResult Genfire::run(const std::uint8_t* support, const float* initial, const GenfireProgress& progress) {
    const auto t0 = clock_type::now();
    const std::size_t nb = std::size_t(shape_.size());
    if (support && std::none_of(support, support + nb, [](std::uint8_t v) { return v != 0; }))
        throw std::invalid_argument("support: the mask is empty");
    std::vector<std::uint8_t> mask;
    if (support) {  // the plan tests bytes against zero; any nonzero byte is inside
        mask.assign(support, support + nb);
    }
    std::vector<float> box(nb, 0.f), current, previous, best;
    if (initial) {
        for (std::size_t i = 0; i < nb; ++i)
            if (!std::isfinite(initial[i]))
                throw std::invalid_argument("initial: expected finite values, got " + num(initial[i]) +
                                            " at flat index " + std::to_string(i));
        std::copy(initial, initial + nb, box.begin());
    }
    const index_t n_points = index_t(e_idx_.size());
    const double kmax = e_kr_.empty() ? 0.0 : double(e_kr_.back());
    const int n_ext = int(std::lround(opt_.extension * opt_.iterations));
    const bool use_momentum = opt_.momentum > 0;
    const float m = float(opt_.momentum);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    GenfireResult res;
    res.shape = shape_;
    res.grid_size = grid_size();
    res.grid_shape = grid_shape();
    res.measured_points = measured_points();
    res.free_points = free_points();
    double best_err = std::numeric_limits<double>::infinity();
    int since_best = 0;
    bool have_best = false, have_previous = false;
    for (int it = 0; it < opt_.iterations; ++it) {
        const index_t n_enf =
            it < n_ext ? enforced_up_to(kmax * (0.1 + 0.9 * double(it + 1) / double(n_ext))) : n_points;
        const FourierErrors e = plan_->iterate(box.data(), support ? mask.data() : nullptr, opt_.positivity,
                                               e_idx_.data(), e_val_.data(), n_points, n_enf, f_idx_.data(),
                                               f_val_.data(), index_t(f_idx_.size()));
        // `current` is this step's projected iterate; with momentum, `box` steps on along the last
        // move (accelerated alternating projections): box = current + m (current - previous).
        const std::vector<float>* cur = &box;
        if (use_momentum) {
            current = box;
            if (have_previous) {
                for (std::size_t i = 0; i < nb; ++i) box[i] += m * (current[i] - previous[i]);
            }
            std::swap(previous, current);  // previous = this step's iterate
            have_previous = true;
            cur = &previous;
        }
        res.errors.push_back(e.error);
        res.rfree.push_back(e.rfree >= 0 ? e.rfree : nan);
        if (n_enf == n_points) {
            // `e.error` measures the iterate that went into this step; keep the iterate whose
            // successor had the lowest error.
            if (e.error < best_err * (1 - opt_.tol)) since_best = 0;
            else ++since_best;
            if (e.error < best_err) {
                best_err = e.error;
                best = *cur;
                have_best = true;
            }
        }
        if (progress && !progress(it, e.error, res.rfree.back())) {
            res.cancelled = true;
            break;
        }
        if (n_enf == n_points && since_best >= opt_.patience) break;
    }
    if (have_best) res.volume = std::move(best);
    else if (have_previous) res.volume = std::move(previous);
    else res.volume = std::move(box);
    res.seconds_iterations = seconds_since(t0);
    return res;
}

GenfireResult genfire(const float* tilts, index_t K, index_t ny, index_t nx, const double* euler_rad, Shape3 shape,
                      const std::uint8_t* support, const GenfireOptions& opt, const GenfireProgress& progress) {
    Genfire g(tilts, K, ny, nx, euler_rad, shape, opt);
    return g.run(support, nullptr, progress);
}

}  // namespace aet
