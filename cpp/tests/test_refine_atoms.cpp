// The whole refinement in the core (aet::refine_atoms) and its bounded minimiser
// (aet::minimize_bounded_lbfgs):
//  - the minimiser finds known minima: a separable quadratic whose unconstrained minimum lies partly
//    outside the box (answer: the clipped minimum), the Rosenbrock function (1, 1) and the Rosenbrock
//    function with x <= 0.5 (answer (0.5, 0.25)); every point it evaluates is inside the box;
//  - on atoms rendered by the core's own projector (project_atoms), from a start displaced by 0.3 Å
//    RMS with other heights and B, the refinement recovers the true positions to < 1 pm and the
//    heights and B to < 0.1 %, noiseless; with max_shift 0.05 Å no coordinate moves further; the
//    progress callback sees every iteration and can stop it; with noise the sandwich precision is
//    finite and the noise level is found; bad arguments are refused by name.
#include <aetcore/atoms.hpp>
#include <aetcore/bounded_lbfgs.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/refine.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

namespace {

constexpr double kDeg = M_PI / 180.0;
constexpr double kPixel = 0.4, kBlur = 0.3;

void minimiser_tests() {
    {  // separable quadratic, minimum partly outside the box
        const std::vector<double> t = {0.3, -2.0, 5.0, 1.5, -0.7, 0.0};
        const std::vector<double> c = {1.0, 10.0, 0.1, 3.0, 100.0, 0.5};
        const std::vector<double> lo = {-1.0, -1.0, -1.0, -HUGE_VAL, 0.0, 0.2};
        const std::vector<double> hi = {1.0, 1.0, 1.0, 1.0, HUGE_VAL, 0.5};
        bool inside = true;
        auto f = [&](const std::vector<double>& x, std::vector<double>& g) {
            double v = 0.0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                inside = inside && x[i] >= lo[i] && x[i] <= hi[i];
                v += c[i] * (x[i] - t[i]) * (x[i] - t[i]);
                g[i] = 2.0 * c[i] * (x[i] - t[i]);
            }
            return v;
        };
        BoundedLbfgsOptions o;
        o.gtol = 1e-12;
        o.ftol = 0.0;
        const BoundedLbfgsResult r = minimize_bounded_lbfgs(f, {0.9, 0.9, -0.9, -3.0, 2.0, 0.4}, lo, hi, o);
        double worst = 0.0;
        for (std::size_t i = 0; i < t.size(); ++i)
            worst = std::max(worst, std::abs(r.x[i] - std::min(std::max(t[i], lo[i]), hi[i])));
        std::printf("quadratic: %d iterations, %d evaluations, largest error %.2e (%s)\n", r.iterations,
                    r.evaluations, worst, r.message.c_str());
        AET_CHECK(worst < 1e-10);
        AET_CHECK(inside);
        AET_CHECK(r.converged);
    }
    auto rosen = [](const std::vector<double>& x, std::vector<double>& g) {
        const double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
        g[0] = -2.0 * a - 400.0 * x[0] * b;
        g[1] = 200.0 * b;
        return a * a + 100.0 * b * b;
    };
    {  // Rosenbrock, unconstrained: (1, 1)
        BoundedLbfgsOptions o;
        o.max_iterations = 200;
        o.ftol = 0.0;
        o.gtol = 1e-10;
        const BoundedLbfgsResult r =
            minimize_bounded_lbfgs(rosen, {-1.2, 1.0}, {-HUGE_VAL, -HUGE_VAL}, {HUGE_VAL, HUGE_VAL}, o);
        std::printf("rosenbrock: %d iterations, (%.10f, %.10f) (%s)\n", r.iterations, r.x[0], r.x[1],
                    r.message.c_str());
        AET_CHECK_CLOSE(r.x[0], 1.0, 0.0, 1e-7);
        AET_CHECK_CLOSE(r.x[1], 1.0, 0.0, 1e-7);
    }
    {  // Rosenbrock with x <= 0.5: (0.5, 0.25), x active
        BoundedLbfgsOptions o;
        o.max_iterations = 200;
        o.ftol = 0.0;
        o.gtol = 1e-10;
        bool inside = true;
        auto f = [&](const std::vector<double>& x, std::vector<double>& g) {
            inside = inside && x[0] <= 0.5 && x[1] >= -3.0 && x[1] <= 3.0;
            return rosen(x, g);
        };
        int calls = 0;
        const BoundedLbfgsResult r = minimize_bounded_lbfgs(f, {-1.2, 1.0}, {-HUGE_VAL, -3.0}, {0.5, 3.0}, o,
                                                            [&](int it, const std::vector<double>&, double) {
                                                                AET_CHECK(it == ++calls);
                                                                return true;
                                                            });
        std::printf("bounded rosenbrock: %d iterations, (%.10f, %.10f) (%s)\n", r.iterations, r.x[0], r.x[1],
                    r.message.c_str());
        AET_CHECK(r.x[0] == 0.5);
        AET_CHECK_CLOSE(r.x[1], 0.25, 0.0, 1e-8);
        AET_CHECK(inside && calls == r.iterations);
    }
    {  // refusals
        auto f = [](const std::vector<double>& x, std::vector<double>& g) {
            g[0] = 2 * x[0];
            return x[0] * x[0];
        };
        AET_CHECK_THROWS(minimize_bounded_lbfgs(f, {0.0}, {0.0, 1.0}, {1.0}), std::invalid_argument, "lower");
        AET_CHECK_THROWS(minimize_bounded_lbfgs(f, {0.0}, {1.0}, {0.0}), std::invalid_argument, "lower/upper");
        AET_CHECK_THROWS(minimize_bounded_lbfgs(f, {NAN}, {0.0}, {1.0}), std::invalid_argument, "x0");
        BoundedLbfgsOptions o;
        o.memory = 0;
        AET_CHECK_THROWS(minimize_bounded_lbfgs(f, {0.0}, {0.0}, {1.0}, o), std::invalid_argument, "memory");
    }
}

struct Case {
    std::vector<double> truth;  // n x 3, Å
    std::vector<std::int32_t> sp;
    std::vector<double> heights = {0.35, 1.0}, b = {3.0, 5.0};
    std::vector<Mat3> rots;
    index_t ndy = 40, ndx = 44;
    std::vector<float> clean;
};

Case make_case() {
    Case c;
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> jitter(-0.2, 0.2);
    for (int i = 0; i < 3; ++i)  // 3 x 3 x 2 atoms 2.7 Å apart, two species
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 2; ++k) {
                c.truth.insert(c.truth.end(), {(i - 1) * 2.7 + jitter(rng), (j - 1) * 2.7 + jitter(rng),
                                               (k - 0.5) * 2.7 + jitter(rng)});
                c.sp.push_back((i + j + k) % 2);
            }
    std::vector<double> euler;
    for (int k = 0; k < 9; ++k) euler.insert(euler.end(), {5.0 * kDeg, (-64.0 + 16.0 * k) * kDeg, 0.0});
    c.rots = euler_zyz_many(euler.data(), 9);
    std::vector<double> vox(c.truth.size());
    for (std::size_t i = 0; i < vox.size(); ++i) vox[i] = c.truth[i] / kPixel;
    AtomSet a;
    a.positions = vox.data();
    a.species = c.sp.data();
    a.n = index_t(c.sp.size());
    a.heights = c.heights;
    for (double bq : c.b) a.sigmas.push_back(sigma_from_b(bq, kBlur, kPixel));
    a.cutoff = 5.0;
    c.clean = project_atoms(a, c.rots, c.ndy, c.ndx, 1);
    return c;
}

double largest(const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

void refinement_tests() {
    const Case c = make_case();
    const index_t n = index_t(c.sp.size());
    std::mt19937_64 rng(5);
    std::normal_distribution<double> shift(0.0, 0.3 / std::sqrt(3.0));
    std::vector<double> start = c.truth;
    for (double& v : start) v += shift(rng);
    const std::vector<double> h_start = {0.35 * 1.25, 1.0 * 0.8}, b_start = {5.0, 3.5};

    {  // noiseless recovery of positions, heights and B
        RefineOptions o;
        o.iterations = 300;
        o.threads = 2;
        int seen = 0;
        const RefineResult r = refine_atoms(start.data(), c.sp.data(), n, h_start, b_start, kBlur, c.rots, c.ndy,
                                            c.ndx, c.clean.data(), kPixel, 0.0, o, [&](int it, double loss) {
                                                AET_CHECK(it == ++seen && loss >= 0);
                                                return true;
                                            });
        const double err = largest(r.positions, c.truth);
        std::printf("refine_atoms: start %.3f Å off, largest error %.2e pm after %d iterations (%d evaluations), "
                    "H %.6f %.6f, B %.6f %.6f, R1 %.3g -> %.3g (%s)\n",
                    largest(start, c.truth), 100 * err, r.iterations, r.evaluations, r.heights[0], r.heights[1],
                    r.b_factors[0], r.b_factors[1], r.r1_before, r.r1_after, r.message.c_str());
        AET_CHECK(largest(start, c.truth) > 0.3);
        AET_CHECK(err < 0.01);  // < 1 pm
        for (int q = 0; q < 2; ++q) {
            AET_CHECK_CLOSE(r.heights[std::size_t(q)], c.heights[std::size_t(q)], 1e-3, 0.0);
            AET_CHECK_CLOSE(r.b_factors[std::size_t(q)], c.b[std::size_t(q)], 1e-3, 0.0);
        }
        AET_CHECK(r.scale == 1.0);  // folded into the heights
        AET_CHECK(r.r1_after < 1e-3 * r.r1_before);
        AET_CHECK(seen == r.iterations && int(r.loss_history.size()) == r.iterations + 1);
        for (std::size_t k = 1; k < r.loss_history.size(); ++k) AET_CHECK(r.loss_history[k] <= r.loss_history[k - 1]);
    }
    {  // bounds: max_shift 0.05 Å, B starting outside [b_min, b_max]
        RefineOptions o;
        o.max_shift = 0.05;
        o.iterations = 40;
        o.threads = 1;
        const RefineResult r = refine_atoms(start.data(), c.sp.data(), n, h_start, {80.0, 0.01}, kBlur, c.rots, c.ndy,
                                            c.ndx, c.clean.data(), kPixel, 0.0, o);
        const double moved = largest(r.positions, start);
        int at_bound = 0;
        for (std::size_t i = 0; i < start.size(); ++i) at_bound += std::abs(r.positions[i] - start[i]) == 0.05;
        std::printf("bounds: largest move %.6f Å, %d of %zu coordinates at the bound, B %.3f %.3f\n", moved, at_bound,
                    start.size(), r.b_factors[0], r.b_factors[1]);
        AET_CHECK(moved <= 0.05 + 1e-15);
        AET_CHECK(at_bound > 0);
        for (double b : r.b_factors) AET_CHECK(b >= o.b_min && b <= o.b_max);
        for (double h : r.heights) AET_CHECK(h > 0);
    }
    {  // noise: the noise level is found, the precision is finite; cancelling after 3 iterations
        std::vector<float> noisy = c.clean;
        std::normal_distribution<double> noise(0.0, 0.01);
        for (float& v : noisy) v += float(noise(rng));
        RefineOptions o;
        o.iterations = 100;
        o.refine_heights = false;
        o.refine_b = false;
        const RefineResult r = refine_atoms(c.truth.data(), c.sp.data(), n, c.heights, c.b, kBlur, c.rots, c.ndy,
                                            c.ndx, noisy.data(), kPixel, 0.0, o);
        std::printf("noise 0.01: sigma %.5f, precision of atom 0 (%.3f, %.3f, %.3f) pm, error %.3f pm\n",
                    r.noise_sigma, 100 * r.precision[0], 100 * r.precision[1], 100 * r.precision[2],
                    100 * largest(r.positions, c.truth));
        AET_CHECK_CLOSE(r.noise_sigma, 0.01, 0.05, 0.0);
        for (double p : r.precision) AET_CHECK(std::isfinite(p) && p > 0 && p < 0.05);
        // at this noise the loss is quadratic around every atom: observed and Gauss-Newton curvature agree
        for (index_t a = 0; a < n; ++a) {
            AET_CHECK(r.curvature_ratio[std::size_t(a)] > 0.9 && r.curvature_ratio[std::size_t(a)] < 1.1);
            AET_CHECK(r.precision_reliable[std::size_t(a)] == 1);
        }
        const RefineResult stop = refine_atoms(start.data(), c.sp.data(), n, c.heights, c.b, kBlur, c.rots, c.ndy,
                                               c.ndx, noisy.data(), kPixel, 0.0, o,
                                               [](int it, double) { return it < 3; });
        AET_CHECK(stop.cancelled && stop.iterations == 3 && stop.loss_history.size() == 4);
    }
    {  // refusals by name
        const RefineOptions ok;
        auto call = [&](std::vector<double> h, std::vector<double> b, double blur, double ps, double scale,
                        const float* data, const RefineOptions& o) {
            return refine_atoms(start.data(), c.sp.data(), n, h, b, blur, c.rots, c.ndy, c.ndx, data, ps, scale, o);
        };
        AET_CHECK_THROWS(call({0.0, 1.0}, c.b, kBlur, kPixel, 0.0, c.clean.data(), ok), std::invalid_argument, "heights");
        AET_CHECK_THROWS(call(c.heights, {3.0}, kBlur, kPixel, 0.0, c.clean.data(), ok), std::invalid_argument,
                         "b_factors");
        AET_CHECK_THROWS(call(c.heights, c.b, -1.0, kPixel, 0.0, c.clean.data(), ok), std::invalid_argument, "blur");
        AET_CHECK_THROWS(call(c.heights, c.b, kBlur, 0.0, 0.0, c.clean.data(), ok), std::invalid_argument,
                         "pixel_size");
        AET_CHECK_THROWS(call(c.heights, c.b, kBlur, kPixel, -1.0, c.clean.data(), ok), std::invalid_argument, "scale");
        const std::vector<float> zeros(c.clean.size(), 0.0f);
        AET_CHECK_THROWS(call(c.heights, c.b, kBlur, kPixel, 0.0, zeros.data(), ok), std::invalid_argument, "tilts");
        RefineOptions bad;
        bad.max_shift = 0.0;
        AET_CHECK_THROWS(call(c.heights, c.b, kBlur, kPixel, 0.0, c.clean.data(), bad), std::invalid_argument,
                         "max_shift");
        std::vector<std::int32_t> sp = c.sp;
        sp[0] = 7;
        AET_CHECK_THROWS(refine_atoms(start.data(), sp.data(), n, c.heights, c.b, kBlur, c.rots, c.ndy, c.ndx,
                                      c.clean.data(), kPixel, 0.0, ok),
                         std::invalid_argument, "species");
    }
}

}  // namespace

int main() {
    minimiser_tests();
    refinement_tests();
    return aet_test::report("test_refine_atoms");
}
