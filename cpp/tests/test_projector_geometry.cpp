// Geometry (CONVENTIONS.md): ZYZ Euler angles against an independent construction, and the
// projection geometry shared by the volume projector and the Gaussian-atom projector: an atom at r
// appears at (u, v) = (R^T r)_{x,y} + (ndx/2, ndy/2), and projecting the rendered atom gives the
// analytic atom projection.
#include <aetcore/atoms.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/memory.hpp>
#include <aetcore/projector.hpp>

#include <Eigen/Geometry>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

namespace {

constexpr double kDeg = M_PI / 180.0;

// Intensity-weighted centroid (u, v) of an ndy x ndx image, in pixel indices, and its total.
void centroid(const float* img, index_t ndy, index_t ndx, double& cu, double& cv, double& total) {
    cu = cv = total = 0.0;
    for (index_t iv = 0; iv < ndy; ++iv)
        for (index_t iu = 0; iu < ndx; ++iu) {
            const double w = img[iv * ndx + iu];
            total += w;
            cu += w * iu;
            cv += w * iv;
        }
    cu /= total;
    cv /= total;
}

}  // namespace

int main() {
    // ZYZ: R = Rz(phi) Ry(theta) Rz(psi), built here with Eigen's AngleAxis.
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> ang(-M_PI, M_PI);
    std::vector<double> angles;
    for (int k = 0; k < 20; ++k) angles.insert(angles.end(), {ang(rng), ang(rng), ang(rng)});
    const auto many = euler_zyz_many(angles.data(), 20);
    AET_CHECK(many.size() == 20);
    for (int k = 0; k < 20; ++k) {
        const double phi = angles[3 * k], theta = angles[3 * k + 1], psi = angles[3 * k + 2];
        const Mat3 ref = (Eigen::AngleAxisd(phi, Vec3::UnitZ()) * Eigen::AngleAxisd(theta, Vec3::UnitY()) *
                          Eigen::AngleAxisd(psi, Vec3::UnitZ()))
                             .toRotationMatrix();
        AET_CHECK((many[k] - ref).cwiseAbs().maxCoeff() < 1e-14);
        AET_CHECK((many[k] - euler_zyz(phi, theta, psi)).cwiseAbs().maxCoeff() == 0.0);
        AET_CHECK((many[k] * many[k].transpose() - Mat3::Identity()).cwiseAbs().maxCoeff() < 1e-14);
        AET_CHECK_CLOSE(many[k].determinant(), 1.0, 0.0, 1e-14);
    }
    // A +90 degree tilt about y takes x to -z (right-handed, acting on column vectors (x, y, z)).
    const Vec3 ex = euler_zyz(0, M_PI / 2, 0) * Vec3::UnitX();
    AET_CHECK((ex - Vec3(0, 0, -1)).norm() < 1e-15);
    // phi then acts about z after the tilt: Rz(90) takes x to y.
    AET_CHECK((euler_zyz(M_PI / 2, 0, 0) * Vec3::UnitX() - Vec3::UnitY()).norm() < 1e-15);
    AET_CHECK(euler_zyz_many(nullptr, 0).empty());
    AET_CHECK_THROWS(euler_zyz_many(nullptr, 2), std::invalid_argument, "angles");

    // One Gaussian atom off centre in a non-cubic volume, seen from general directions.
    const Shape3 s{30, 26, 34};
    const index_t ndy = 36, ndx = 40;
    const double pos[3] = {3.5, -2.25, 1.75};  // (x, y, z) voxels from the origin n//2
    const std::int32_t species[1] = {0};
    AtomSet atom;
    atom.positions = pos;
    atom.species = species;
    atom.n = 1;
    atom.heights = {1.0};
    atom.sigmas = {2.0};
    const std::vector<float> vol = render_atoms(atom, s, 2);
    const double total_atom = std::pow(2.0 * M_PI, 1.5) * 8.0;  // H (2 pi)^{3/2} sigma^3
    double vol_sum = 0.0;
    for (float v : vol) vol_sum += v;
    AET_CHECK_CLOSE(vol_sum, total_atom, 1e-5, 0.0);

    std::vector<double> eul = {0, 0, 0,  0, 35 * kDeg, 0,  20 * kDeg, -50 * kDeg, 65 * kDeg,
                               -110 * kDeg, 70 * kDeg, 15 * kDeg};
    const auto rots = euler_zyz_many(eul.data(), eul.size() / 3);
    const auto analytic = project_atoms(atom, rots, ndy, ndx, 2);
    const auto projected = project_volume(vol.data(), s, rots, ndy, ndx, 2);
    const Vec3 r(pos[0], pos[1], pos[2]);
    for (std::size_t k = 0; k < rots.size(); ++k) {
        const Vec3 uvw = rots[k].transpose() * r;
        const float* a = analytic.data() + k * ndy * ndx;
        const float* p = projected.data() + k * ndy * ndx;
        double au, av, at, pu, pv, pt;
        centroid(a, ndy, ndx, au, av, at);
        centroid(p, ndy, ndx, pu, pv, pt);
        std::printf("view %zu: expected (%.3f, %.3f), atoms (%.3f, %.3f), volume (%.3f, %.3f); totals %.4f %.4f\n",
                    k, uvw[0] + ndx / 2, uvw[1] + ndy / 2, au, av, pu, pv, at, pt);
        // The analytic projection: exact centroid and total (the atom lies well inside the detector).
        AET_CHECK_CLOSE(au, uvw[0] + ndx / 2, 0.0, 1e-4);
        AET_CHECK_CLOSE(av, uvw[1] + ndy / 2, 0.0, 1e-4);
        AET_CHECK_CLOSE(at, total_atom, 1e-4, 0.0);
        // The ray-driven projection of the rendered atom: same place and, within the sampling error
        // of unit steps along the ray through trilinear interpolation, the same total and image.
        AET_CHECK_CLOSE(pu, au, 0.0, 0.02);
        AET_CHECK_CLOSE(pv, av, 0.0, 0.02);
        AET_CHECK_CLOSE(pt, at, 0.03, 0.0);
        double peak = 0.0, worst = 0.0;
        for (index_t i = 0; i < ndy * ndx; ++i) {
            peak = std::max(peak, double(a[i]));
            worst = std::max(worst, std::abs(double(a[i]) - double(p[i])));
        }
        AET_CHECK(worst < 0.05 * peak);
    }

    // The atom projector checks its inputs and names them.
    AtomSet bad = atom;
    bad.sigmas = {-1.0};
    AET_CHECK_THROWS(project_atoms(bad, rots, ndy, ndx, 1), std::invalid_argument, "sigmas");
    const std::int32_t wrong_species[1] = {3};
    bad = atom;
    bad.species = wrong_species;
    AET_CHECK_THROWS(render_atoms(bad, s, 1), std::invalid_argument, "species");
    bad = atom;
    bad.cutoff = 0.0;
    AET_CHECK_THROWS(render_atoms(bad, s, 1), std::invalid_argument, "cutoff");
    const double nan_pos[3] = {0.0, std::nan(""), 0.0};
    bad = atom;
    bad.positions = nan_pos;
    AET_CHECK_THROWS(project_atoms(bad, rots, ndy, ndx, 1), std::invalid_argument, "positions");
    AET_CHECK_THROWS(render_atoms(atom, Shape3{4, 4, -4}, 1), std::invalid_argument, "shape");
    AET_CHECK_THROWS(project_atoms(atom, rots, -1, ndx, 1), std::invalid_argument, "ndy");
    AET_CHECK_THROWS(render_atoms(atom, Shape3{1 << 21, 1 << 21, 1 << 21}, 1), aet::MemoryError,
                     "rendering atoms needs about");

    // gaussian_cell_means (erf from the core's interpolation table) against std::erf, at random
    // centres and widths, in the tails and across the table's end at |x| = 6.
    {
        std::mt19937 gr(5);
        std::uniform_real_distribution<double> uc(-3.0, 3.0), us(0.05, 6.0);
        double worst = 0.0;
        std::vector<double> got(80);
        for (int trial = 0; trial < 2000; ++trial) {
            const double c = uc(gr), sg = us(gr);
            const index_t i0 = -40, n = 80;
            gaussian_cell_means(c, sg, i0, n, got.data());
            const double inv = 1.0 / (std::sqrt(2.0) * sg);
            for (index_t j = 0; j < n; ++j) {
                const double ref = 0.5 * (std::erf((double(i0 + j) + 0.5 - c) * inv) -
                                          std::erf((double(i0 + j) - 0.5 - c) * inv));
                worst = std::max(worst, std::abs(got[j] - ref));
            }
        }
        AET_CHECK(worst < 2e-15);
        std::printf("gaussian_cell_means: largest difference from std::erf %.2e\n", worst);
    }

    // footprint_sums: the window sums of each atom's footprint equal sums over its projection by
    // project_atoms (independent loops; two species, one atom partly off the detector).
    {
        const index_t fy = 30, fx = 34;
        const double fp[6] = {1.3, -0.7, 2.1, -15.6, 3.0, -1.0};  // the second atom near the left edge
        const std::vector<double> heights = {0.4, 1.0}, sigmas = {1.1, 0.8};
        std::vector<Mat3> frots;
        for (double t : {-50.0, -10.0, 35.0}) frots.push_back(euler_zyz(0.2, t * kDeg, -0.1));
        const index_t npx = index_t(frots.size()) * fy * fx;
        std::vector<float> img(npx), wgt(npx);
        std::mt19937 fr(11);
        std::uniform_real_distribution<float> uimg(-1.0f, 1.0f), uw(0.5f, 2.0f);
        for (index_t i = 0; i < npx; ++i) {
            img[i] = uimg(fr);
            wgt[i] = uw(fr);
        }
        std::vector<double> amp(2);
        for (int s2 = 0; s2 < 2; ++s2) amp[s2] = heights[s2] * std::pow(2.0 * M_PI, 1.5) * std::pow(sigmas[s2], 3);
        const index_t half = index_t(std::ceil(6.0 * 1.1));
        std::vector<double> fa(4), fc(8);
        footprint_sums(fp, 2, frots, fy, fx, amp, sigmas, half, img.data(), wgt.data(), fa.data(), fc.data(), 2);
        for (int i = 0; i < 2; ++i) {
            std::vector<std::vector<float>> f(2);
            for (int s2 = 0; s2 < 2; ++s2) {
                const std::int32_t sp[1] = {s2};
                AtomSet one;
                one.positions = fp + 3 * i;
                one.species = sp;
                one.n = 1;
                one.heights = {0.0, 0.0};
                one.heights[s2] = heights[s2];
                one.sigmas = sigmas;
                one.cutoff = 6.0;
                f[s2] = project_atoms(one, frots, fy, fx, 1);
            }
            for (int s2 = 0; s2 < 2; ++s2) {
                double ra = 0.0;
                for (index_t p = 0; p < npx; ++p) ra += double(img[p] * wgt[p]) * f[s2][p];
                AET_CHECK_CLOSE(fa[2 * i + s2], ra, 1e-5, 1e-5);
                for (int t2 = 0; t2 < 2; ++t2) {
                    double rc = 0.0;
                    for (index_t p = 0; p < npx; ++p) rc += double(wgt[p]) * f[s2][p] * f[t2][p];
                    AET_CHECK_CLOSE(fc[(2 * i + s2) * 2 + t2], rc, 1e-5, 1e-7);
                }
            }
        }
        AET_CHECK_THROWS(footprint_sums(fp, 2, frots, fy, fx, amp, {1.0}, half, img.data(), wgt.data(), fa.data(),
                                        fc.data(), 1),
                         std::invalid_argument, "sigmas");
        AET_CHECK_THROWS(footprint_sums(fp, 2, frots, fy, fx, amp, sigmas, half, img.data(), nullptr, fa.data(),
                                        fc.data(), 1),
                         std::invalid_argument, "weights");
    }

    return aet_test::report("test_projector_geometry");
}
