// The projector and its adjoint: <A x, y> == <x, A^T y> to float rounding, for single-axis tilts
// (the y-slice fast path), general Euler angles and a tilt series about y with small out-of-axis angles
// (the general path, back-projected in y slabs), on a non-cubic volume and a detector larger
// than the volume in one direction and smaller in the other. Also: theta = 0 is the sum along z,
// the thread count does not change the result, and bad input and oversized outputs are refused.
#include <aetcore/geometry.hpp>
#include <aetcore/memory.hpp>
#include <aetcore/projector.hpp>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

namespace {

constexpr double kDeg = M_PI / 180.0;

std::vector<float> random_values(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

// <a, b> in double, and sum |a_i b_i| (the scale against which rounding is judged).
void dot(const std::vector<float>& a, const std::vector<float>& b, double& d, double& scale) {
    d = scale = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d += double(a[i]) * double(b[i]);
        scale += std::abs(double(a[i]) * double(b[i]));
    }
}

void check_adjoint(const std::vector<Mat3>& rots, Shape3 s, index_t ndy, index_t ndx, const char* label) {
    const auto x = random_values(std::size_t(s.size()), 1);
    const auto y = random_values(rots.size() * std::size_t(ndy * ndx), 2);
    const auto Ax = project_volume(x.data(), s, rots, ndy, ndx, 2);
    const auto Aty = backproject_volume(y.data(), ndy, ndx, rots, s, 2);
    double lhs, lscale, rhs, rscale;
    dot(Ax, y, lhs, lscale);
    dot(x, Aty, rhs, rscale);
    std::printf("%s: <Ax, y> = %.9g, <x, A^T y> = %.9g, relative difference %.2g\n", label, lhs, rhs,
                std::abs(lhs - rhs) / lscale);
    // Float rounding of the stored projections and of the float accumulation of the back-projection:
    // about 1e-7 per term; a wrong adjoint (an offset, a missing tap) differs by O(1) of the scale.
    AET_CHECK(lscale > 1.0);
    AET_CHECK_CLOSE(lhs, rhs, 0.0, 2e-6 * lscale);
    // The adjoint is not trivially zero or a copy: both sides are well away from zero.
    AET_CHECK(std::abs(lhs) > 1e-3 * lscale);

    // Every thread count gives the same numbers (each voxel receives its terms in one fixed order).
    const auto Aty1 = backproject_volume(y.data(), ndy, ndx, rots, s, 1);
    const auto Ax1 = project_volume(x.data(), s, rots, ndy, ndx, 1);
    AET_CHECK(Aty1 == Aty);
    AET_CHECK(Ax1 == Ax);
}

}  // namespace

int main() {
    const Shape3 s{10, 13, 16};  // nz, ny, nx: non-cubic, odd and even sides

    // Single-axis tilts about y (phi = psi = 0): the y-slice fast path.
    std::vector<double> tilt;
    for (double t : {-63.0, -17.5, 0.0, 28.0, 71.0}) tilt.insert(tilt.end(), {0.0, t * kDeg, 0.0});
    const auto tilts = euler_zyz_many(tilt.data(), tilt.size() / 3);
    check_adjoint(tilts, s, 11, 21, "y tilts");

    // General Euler angles: the trilinear path.
    std::vector<double> eul = {10 * kDeg, -40 * kDeg, 25 * kDeg, -70 * kDeg, 55 * kDeg, 5 * kDeg,
                               0.0,       0.0,        90 * kDeg, 33 * kDeg,  80 * kDeg, -120 * kDeg};
    const auto general = euler_zyz_many(eul.data(), eul.size() / 3);
    check_adjoint(general, s, 17, 12, "general angles");

    // A tilt series about y with small out-of-axis angles (a measured series, the Ta film's +-0.4 deg):
    // the general path, back-projected in y slabs with whole detector rows skipped per slab; a wide
    // detector, so rays leave the box through x at high tilt.
    std::vector<double> near;
    const double out_of_axis[] = {0.4, -0.3, 0.1, -0.4, 0.25, 0.0};
    int j = 0;
    for (double t : {-63.0, -40.0, -12.5, 0.0, 31.0, 56.0}) {
        near.insert(near.end(), {out_of_axis[j] * kDeg, t * kDeg, -out_of_axis[(j + 2) % 6] * kDeg});
        ++j;
    }
    const auto near_y = euler_zyz_many(near.data(), near.size() / 3);
    check_adjoint(near_y, Shape3{12, 17, 30}, 17, 24, "near-y tilts");

    // theta = 0 with the detector the size of the volume: the sum along z, voxel by voxel.
    {
        const auto x = random_values(std::size_t(s.size()), 3);
        const std::vector<Mat3> id{euler_zyz(0, 0, 0)};
        const auto p = project_volume(x.data(), s, id, s.ny, s.nx, 2);
        double worst = 0.0;
        for (index_t iy = 0; iy < s.ny; ++iy)
            for (index_t ix = 0; ix < s.nx; ++ix) {
                double sum = 0.0;
                for (index_t iz = 0; iz < s.nz; ++iz) sum += x[(iz * s.ny + iy) * s.nx + ix];
                worst = std::max(worst, std::abs(sum - double(p[iy * s.nx + ix])));
            }
        AET_CHECK(worst < 1e-5);
    }

    // The core checks its inputs and names the argument.
    std::vector<float> vol(std::size_t(s.size()), 1.0f), out(tilts.size() * 11 * 21);
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, 11, -1, 1), std::invalid_argument, "ndx");
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, -3, 21, 1), std::invalid_argument, "ndy");
    AET_CHECK_THROWS(project_volume(nullptr, s, tilts, 11, 21, 1), std::invalid_argument, "volume");
    AET_CHECK_THROWS(project_volume(vol.data(), Shape3{-1, 4, 4}, tilts, 11, 21, 1), std::invalid_argument,
                     "volume");
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, 11, 21, 100000), std::invalid_argument, "threads");
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, 11, 21, out.data(), 100000), std::invalid_argument,
                     "threads");
    AET_CHECK_THROWS(backproject_volume(out.data(), 11, 21, tilts, Shape3{4, -2, 4}, 1), std::invalid_argument,
                     "shape");
    AET_CHECK_THROWS(backproject_volume(nullptr, 11, 21, tilts, s, 1), std::invalid_argument, "projections");
    std::vector<Mat3> bad = tilts;
    bad[2](1, 1) = std::nan("");
    AET_CHECK_THROWS(project_volume(vol.data(), s, bad, 11, 21, 1), std::invalid_argument, "rotations");
    const double nan_angles[3] = {0.0, std::nan(""), 0.0};
    AET_CHECK_THROWS(euler_zyz_many(nan_angles, 1), std::invalid_argument, "angles");

    // Outputs beyond the memory available are refused before anything is allocated.
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, index_t(1) << 30, index_t(1) << 30, 1), aet::MemoryError,
                     "projecting a volume needs about");
    AET_CHECK_THROWS(backproject_volume(out.data(), 11, 21, tilts, Shape3{1 << 20, 1 << 20, 1 << 20}, 1),
                     aet::MemoryError, "back-projecting a tilt series needs about");
    // ... and under AETCORE_MEMORY_LIMIT, the y-tilt copy of the volume in the in-place call too.
    setenv("AETCORE_MEMORY_LIMIT", "100", 1);
    AET_CHECK_THROWS(project_volume(vol.data(), s, tilts, 11, 21, out.data(), 1), aet::MemoryError,
                     "but only 100 B is available");
    unsetenv("AETCORE_MEMORY_LIMIT");
    project_volume(vol.data(), s, tilts, 11, 21, out.data(), 1);
    AET_CHECK(out[5 * 21 + 10] > 0.0f);

    return aet_test::report("test_projector_adjoint");
}
