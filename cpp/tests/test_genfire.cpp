// GENFIRE in the core, called from C++ only: a round trip on a small phantom of Gaussian atoms
// (exact projections by project_atoms, truth by render_atoms) reconstructs the phantom; the grid
// is even and 7-smooth; the R-free split is the documented draw (count, determinism, seeds); the
// progress callback sees every iteration and can stop the run; bad options are refused by name.
#include <aetcore/atoms.hpp>
#include <aetcore/genfire.hpp>
#include <aetcore/geometry.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

namespace {

constexpr double kDeg = M_PI / 180.0;

bool smooth7(index_t m) {
    for (index_t p : {2, 3, 5, 7})
        while (m % p == 0) m /= p;
    return m == 1;
}

// ||a x - y|| / ||y|| with the best scale a (reconstructions are in arbitrary units).
double relative_error(const std::vector<float>& x, const std::vector<float>& y) {
    double xy = 0, xx = 0, yy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        xy += double(x[i]) * y[i];
        xx += double(x[i]) * x[i];
        yy += double(y[i]) * y[i];
    }
    const double a = xx > 0 ? xy / xx : 0.0;
    double r = 0;
    for (std::size_t i = 0; i < x.size(); ++i) r += (a * x[i] - y[i]) * (a * x[i] - y[i]);
    return std::sqrt(r / yy);
}

struct Phantom {
    Shape3 shape{24, 24, 24};
    std::vector<double> positions;  // voxels, (x, y, z) from the centre
    std::vector<std::int32_t> species;
    std::vector<double> euler;      // K x 3, radians
    std::vector<float> tilts, truth;
    index_t K = 0;
};

// 40 atoms of sigma 0.9 voxel at least 2.5 voxels apart inside a sphere of radius 7 voxels,
// 31 tilts over -70..70 degrees about y.
Phantom make_phantom() {
    Phantom p;
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-7.0, 7.0);
    while (p.species.size() < 40) {
        const double x = u(rng), y = u(rng), z = u(rng);
        if (x * x + y * y + z * z > 49) continue;
        bool ok = true;
        for (std::size_t j = 0; j < p.species.size() && ok; ++j) {
            const double dx = x - p.positions[3 * j], dy = y - p.positions[3 * j + 1], dz = z - p.positions[3 * j + 2];
            ok = dx * dx + dy * dy + dz * dz >= 2.5 * 2.5;
        }
        if (!ok) continue;
        p.positions.insert(p.positions.end(), {x, y, z});
        p.species.push_back(0);
    }
    AtomSet a;
    a.positions = p.positions.data();
    a.species = p.species.data();
    a.n = index_t(p.species.size());
    a.heights = {1.0};
    a.sigmas = {0.9};
    p.K = 31;
    for (index_t k = 0; k < p.K; ++k) p.euler.insert(p.euler.end(), {0.0, (-70.0 + 140.0 * k / (p.K - 1)) * kDeg, 0.0});
    p.tilts = project_atoms(a, euler_zyz_many(p.euler.data(), std::size_t(p.K)), p.shape.ny, p.shape.nx, 2);
    p.truth = render_atoms(a, p.shape, 2);
    return p;
}

}  // namespace

int main() {
    // Grid sizes: ceil(oversampling n) rounded up to the next even 7-smooth number.
    AET_CHECK(genfire_grid_size(128, 3.0) == 384);
    AET_CHECK(genfire_grid_size(131, 3.0) == 400);  // 394 = 2 x 197 before
    AET_CHECK(genfire_grid_size(24, 2.0) == 48);
    for (index_t n = 1; n < 200; ++n) {
        const index_t N = genfire_grid_size(n, 2.5);
        AET_CHECK(N % 2 == 0 && smooth7(N) && N >= index_t(std::ceil(2.5 * n - 1e-9)));
    }
    AET_CHECK(next_smooth(11) == 12 && next_smooth(13, true) == 14 && next_smooth(97) == 98);
    // The grid follows the box, one side per axis (no side below that of half the largest box side),
    // and the memory estimate follows the grid.
    {
        const Shape3 g = genfire_grid_shape(Shape3{131, 61, 131}, 3.0);
        AET_CHECK(g.nz == 400 && g.ny == 200 && g.nx == 400);
        const Shape3 s = genfire_grid_shape(Shape3{24, 32, 64}, 3.0);
        AET_CHECK(s.nz == 96 && s.ny == 96 && s.nx == 192);
        GenfireOptions o;
        o.threads = 2;
        AET_CHECK(genfire_memory_bytes(36, 32, 64, Shape3{24, 32, 64}, o) <
                  0.5 * genfire_memory_bytes(36, 32, 64, Shape3{64, 64, 64}, o));
        AET_CHECK(GenfirePlan::memory_bytes(s, 2) < 0.3 * GenfirePlan::memory_bytes(192, 2));
    }

    // The R-free draw: llround(fraction n) points, the same for a seed, different for another.
    {
        const auto a = genfire_rfree_split(10000, 0.05, 1), b = genfire_rfree_split(10000, 0.05, 1),
                   c = genfire_rfree_split(10000, 0.05, 2);
        AET_CHECK(std::accumulate(a.begin(), a.end(), 0) == 500);
        AET_CHECK(a == b);
        AET_CHECK(a != c);
        const auto none = genfire_rfree_split(100, 0.0, 1);
        AET_CHECK(std::accumulate(none.begin(), none.end(), 0) == 0);
        // The documented draw, by hand: partial Fisher-Yates with rng() % (n - i).
        std::vector<index_t> perm(50);
        std::iota(perm.begin(), perm.end(), 0);
        std::mt19937_64 rng(7);
        std::vector<std::uint8_t> expect(50, 0);
        for (index_t i = 0; i < 10; ++i) {
            std::swap(perm[i], perm[i + index_t(rng() % std::uint64_t(50 - i))]);
            expect[perm[i]] = 1;
        }
        AET_CHECK(genfire_rfree_split(50, 0.2, 7) == expect);
    }

    const Phantom p = make_phantom();
    GenfireOptions opt;
    opt.oversampling = 2.0;
    opt.iterations = 60;
    opt.seed = 3;
    opt.threads = 2;

    // Round trip: the reconstruction is close to the phantom (the missing wedge of +-70 degrees
    // limits it); the error falls; R-free is reported and above the error.
    std::vector<std::uint8_t> sphere(std::size_t(p.shape.size()), 0);
    for (index_t z = 0; z < 24; ++z)
        for (index_t y = 0; y < 24; ++y)
            for (index_t x = 0; x < 24; ++x)
                sphere[std::size_t((z * 24 + y) * 24 + x)] = (x - 12) * (x - 12) + (y - 12) * (y - 12) + (z - 12) * (z - 12) <= 100;
    int calls = 0;
    GenfireResult r = genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, sphere.data(), opt,
                              [&](int it, double, double) { AET_CHECK(it == calls); ++calls; return true; });
    const double err = relative_error(r.volume, p.truth);
    std::printf("round trip: relative error %.4f after %zu iterations (grid %lld, %lld points, %lld free)\n", err,
                r.errors.size(), (long long)r.grid_size, (long long)r.measured_points, (long long)r.free_points);
    AET_CHECK(err < 0.15);
    AET_CHECK(calls == int(r.errors.size()) && !r.cancelled);
    AET_CHECK(r.errors.back() < 0.5 * r.errors.front());
    AET_CHECK(r.free_points == std::llround(0.05 * double(r.measured_points)));
    AET_CHECK(std::isfinite(r.rfree.back()) && r.rfree.back() > r.errors.back());
    {  // the whole box as support is worse than the sphere but still a reconstruction
        GenfireResult box = genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, nullptr, opt);
        const double e_box = relative_error(box.volume, p.truth);
        std::printf("round trip, whole box as support: relative error %.4f\n", e_box);
        AET_CHECK(e_box < 0.2);
    }
    // The same seed gives the same volume; the plan object gives what the one call gives.
    {
        Genfire plan(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, opt);
        GenfireResult again = plan.run(sphere.data(), nullptr);
        AET_CHECK(again.volume == r.volume);
        AET_CHECK(plan.grid_size() == 48 && plan.measured_points() == r.measured_points);
        const std::vector<float> low = plan.low_resolution();
        AET_CHECK(relative_error(low, p.truth) < 0.9);  // a blurred object, not nothing
    }
    // A callback that returns false stops after that iteration.
    {
        GenfireResult stopped = genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, nullptr, opt,
                                        [](int it, double, double) { return it < 4; });
        AET_CHECK(stopped.cancelled && stopped.errors.size() == 5);
    }
    // Bad input is refused, naming the argument.
    {
        GenfireOptions bad = opt;
        bad.momentum = 1.0;
        AET_CHECK_THROWS(validate(bad), std::invalid_argument, "momentum");
        bad = opt;
        bad.rfree_fraction = 0.5;
        AET_CHECK_THROWS(genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, nullptr, bad),
                         std::invalid_argument, "rfree_fraction");
        bad = opt;
        bad.plane_upsampling = 9;
        AET_CHECK_THROWS(validate(bad), std::invalid_argument, "plane_upsampling");
        std::vector<float> zeros(p.tilts.size(), 0.f);
        AET_CHECK_THROWS(genfire(zeros.data(), p.K, 24, 24, p.euler.data(), p.shape, nullptr, opt),
                         std::invalid_argument, "tilts");
        std::vector<std::uint8_t> empty(sphere.size(), 0);
        AET_CHECK_THROWS(genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), p.shape, empty.data(), opt),
                         std::invalid_argument, "support");
        AET_CHECK_THROWS(genfire(p.tilts.data(), p.K, 24, 24, p.euler.data(), Shape3{0, 24, 24}, nullptr, opt),
                         std::invalid_argument, "volume_shape");
    }
    return aet_test::report("test_genfire");
}
