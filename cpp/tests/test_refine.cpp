// The refinement objective in the core: its analytic gradients with respect to the atom positions,
// the heights and the B-factors agree with central finite differences, with a fixed scale and with
// the closed-form scale (envelope theorem); the observed (Newton) Hessian blocks per atom agree with
// central differences of that gradient; the options hold the documented defaults; bad input is
// refused by name.
#include <aetcore/atoms.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/refine.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

namespace {

constexpr double kDeg = M_PI / 180.0;
constexpr double kPixel = 0.4, kBlur = 0.3;

struct Problem {
    std::vector<double> pos;  // voxels
    std::vector<std::int32_t> sp;
    std::vector<double> heights, b;
    std::vector<Mat3> rots;
    std::vector<float> measured;
    index_t ndy = 22, ndx = 20;
};

AtomSet atoms_of(const Problem& p, const std::vector<double>& pos, const std::vector<double>& h,
                 const std::vector<double>& b) {
    AtomSet a;
    a.positions = pos.data();
    a.species = p.sp.data();
    a.n = index_t(p.sp.size());
    a.heights = h;
    for (double bq : b) a.sigmas.push_back(sigma_from_b(bq, kBlur, kPixel));
    a.cutoff = 5.0;
    return a;
}

double loss(const Problem& p, const std::vector<double>& pos, const std::vector<double>& h,
            const std::vector<double>& b, double scale) {
    return refine_objective(atoms_of(p, pos, h, b), p.rots, p.ndy, p.ndx, p.measured.data(), scale, kPixel, false,
                            false, 1)
        .loss;
}

}  // namespace

int main() {
    Problem p;
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(-5.0, 5.0);
    for (int i = 0; i < 8; ++i) {
        p.pos.insert(p.pos.end(), {u(rng), u(rng), u(rng)});
        p.sp.push_back(i % 2);
    }
    p.heights = {1.0, 0.4};
    p.b = {0.5, 0.8};
    std::vector<double> euler;
    for (int k = 0; k < 7; ++k) euler.insert(euler.end(), {0.1 * k * kDeg, (-60.0 + 20.0 * k) * kDeg, 0.0});
    p.rots = euler_zyz_many(euler.data(), 7);
    {  // the measurement: the atoms moved a little, other heights and B, plus noise
        std::vector<double> moved = p.pos;
        std::normal_distribution<double> n(0.0, 0.2);
        for (double& v : moved) v += n(rng);
        p.measured = project_atoms(atoms_of(p, moved, {1.1, 0.35}, {0.6, 0.7}), p.rots, p.ndy, p.ndx, 1);
        std::normal_distribution<double> noise(0.0, 0.01);
        for (float& v : p.measured) v += float(noise(rng));
    }

    for (double scale : {1.3, 0.0}) {  // fixed, then closed form
        const RefineEval e = refine_objective(atoms_of(p, p.pos, p.heights, p.b), p.rots, p.ndy, p.ndx,
                                              p.measured.data(), scale, kPixel, true, true, 2);
        AET_CHECK(e.loss > 0 && e.grad_pos.size() == 3 * p.sp.size() && e.grad_b.size() == 2);
        const double hpos = 1e-5, hh = 1e-6, hb = 1e-5;
        double worst = 0;
        for (std::size_t i = 0; i < p.pos.size(); ++i) {
            std::vector<double> a = p.pos, b = p.pos;
            a[i] += hpos;
            b[i] -= hpos;
            const double fd = (loss(p, a, p.heights, p.b, scale) - loss(p, b, p.heights, p.b, scale)) / (2 * hpos);
            AET_CHECK_CLOSE(e.grad_pos[i], fd, 1e-4, 1e-7 * e.loss);
            worst = std::max(worst, std::abs(e.grad_pos[i] - fd) / std::max(std::abs(fd), 1e-12));
        }
        for (std::size_t q = 0; q < 2; ++q) {
            std::vector<double> a = p.heights, b = p.heights;
            a[q] += hh;
            b[q] -= hh;
            const double fd = (loss(p, p.pos, a, p.b, scale) - loss(p, p.pos, b, p.b, scale)) / (2 * hh);
            AET_CHECK_CLOSE(e.grad_height[q], fd, 1e-4, 1e-7 * e.loss);
            std::vector<double> c = p.b, d = p.b;
            c[q] += hb;
            d[q] -= hb;
            const double fdb = (loss(p, p.pos, p.heights, c, scale) - loss(p, p.pos, p.heights, d, scale)) / (2 * hb);
            AET_CHECK_CLOSE(e.grad_b[q], fdb, 1e-4, 1e-7 * e.loss);
        }
        std::printf("scale %s: loss %.6g, largest relative position-gradient error %.2e\n",
                    scale > 0 ? "fixed" : "closed form", e.loss, worst);
        // the Gauss-Newton blocks are positive semi-definite (xx, yy, zz >= 0)
        for (std::size_t i = 0; i < p.sp.size(); ++i)
            AET_CHECK(e.jtj[6 * i] >= 0 && e.jtj[6 * i + 3] >= 0 && e.jtj[6 * i + 5] >= 0);
        if (scale > 0) {  // the observed Hessian block s^2 jtj + rhess: central differences of the gradient
            const int ii[6] = {0, 0, 0, 1, 1, 2}, jj[6] = {0, 1, 2, 1, 2, 2};
            double hworst = 0, hmax = 0;
            for (std::size_t i = 0; i < p.sp.size(); ++i)
                for (int q = 0; q < 6; ++q) {
                    std::vector<double> a = p.pos, b = p.pos;
                    a[3 * i + std::size_t(jj[q])] += 1e-4;
                    b[3 * i + std::size_t(jj[q])] -= 1e-4;
                    const RefineEval ea = refine_objective(atoms_of(p, a, p.heights, p.b), p.rots, p.ndy, p.ndx,
                                                           p.measured.data(), scale, kPixel, true, false, 1);
                    const RefineEval eb = refine_objective(atoms_of(p, b, p.heights, p.b), p.rots, p.ndy, p.ndx,
                                                           p.measured.data(), scale, kPixel, true, false, 1);
                    const std::size_t r = 3 * i + std::size_t(ii[q]);
                    const double fd = (ea.grad_pos[r] - eb.grad_pos[r]) / 2e-4;
                    const double an = scale * scale * e.jtj[6 * i + std::size_t(q)] + e.rhess[6 * i + std::size_t(q)];
                    hworst = std::max(hworst, std::abs(an - fd));
                    hmax = std::max(hmax, std::abs(fd));
                    AET_CHECK(e.rhess[6 * i + std::size_t(q)] != 0.0);
                }
            std::printf("observed Hessian blocks: largest error %.2e of largest entry %.3g\n", hworst, hmax);
            AET_CHECK(hworst <= 1e-6 * hmax);
        }
    }

    {  // defaults and refusals
        const RefineOptions d;
        AET_CHECK(d.max_shift == 1.0 && d.iterations == 25 && d.precondition && d.cutoff == 5.0 && d.precision == "sandwich");
        validate(d);
        RefineOptions bad;
        bad.precision = "exact";
        AET_CHECK_THROWS(validate(bad), std::invalid_argument, "precision");
        AET_CHECK_THROWS(sigma_from_b(-1.0, 0.0, kPixel), std::invalid_argument, "b_factors");
        AET_CHECK_THROWS(sigma_from_b(0.0, 0.0, kPixel), std::invalid_argument, "b_factors/blur");
        std::vector<float> nan = p.measured;
        nan[3] = NAN;
        AET_CHECK_THROWS(refine_objective(atoms_of(p, p.pos, p.heights, p.b), p.rots, p.ndy, p.ndx, nan.data(), 0.0,
                                          kPixel, true, false, 1),
                         std::invalid_argument, "tilts");
    }
    return aet_test::report("test_refine");
}
