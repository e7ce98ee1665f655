// Embeds the installed aetcore: projects a small phantom at theta = 0 and at a 30 degree tilt, checks
// that each projection holds the volume's total and that theta = 0 is the sum along z, and takes the
// FFTW planner lock the way a host program that also calls FFTW would.
#include <aetcore/fftw_lock.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/memory.hpp>
#include <aetcore/projector.hpp>

#include <cmath>
#include <cstdio>
#include <fftw3.h>
#include <mutex>
#include <stdexcept>
#include <vector>

int main() {
    const aet::Shape3 s{16, 12, 20};  // nz, ny, nx
    std::vector<float> vol(std::size_t(s.size()), 0.0f);
    double total = 0.0;
    for (aet::index_t z = 5; z < 11; ++z)  // a block well inside the volume, its values varying
        for (aet::index_t y = 3; y < 9; ++y)
            for (aet::index_t x = 6; x < 14; ++x) {
                const float v = 1.0f + 0.1f * float(x + 2 * y + 3 * z);
                vol[std::size_t((z * s.ny + y) * s.nx + x)] = v;
                total += v;
            }
    const double angles[] = {0.0, 0.0, 0.0, 0.0, 30.0 * M_PI / 180.0, 0.0};
    const auto rots = aet::euler_zyz_many(angles, 2);
    const aet::index_t ndy = 16, ndx = 32;
    const std::vector<float> proj = aet::project_volume(vol.data(), s, rots, ndy, ndx, 2);
    int failures = 0;
    for (std::size_t k = 0; k < rots.size(); ++k) {
        double sum = 0.0;
        for (aet::index_t i = 0; i < ndy * ndx; ++i) sum += proj[k * ndy * ndx + i];
        // Unit steps along the ray through trilinear interpolation keep the total to a few percent
        // at a tilt (exactly at theta = 0).
        const double tol = k == 0 ? 1e-5 : 0.02;
        std::printf("view %zu: projection total %.4f, volume total %.4f\n", k, sum, total);
        if (std::abs(sum - total) > tol * total) ++failures;
    }
    // theta = 0: pixel (iv, iu) is the sum along z of voxel column (y, x) = (iv - 2, iu - 6).
    double worst = 0.0;
    for (aet::index_t y = 0; y < s.ny; ++y)
        for (aet::index_t x = 0; x < s.nx; ++x) {
            double col = 0.0;
            for (aet::index_t z = 0; z < s.nz; ++z) col += vol[std::size_t((z * s.ny + y) * s.nx + x)];
            const aet::index_t iv = y - s.ny / 2 + ndy / 2, iu = x - s.nx / 2 + ndx / 2;
            worst = std::max(worst, std::abs(col - proj[std::size_t(iv * ndx + iu)]));
        }
    std::printf("theta = 0 against the sum along z: worst difference %.3g\n", worst);
    if (worst > 1e-4) ++failures;

    // The planner lock, as a host program would take it around its own FFTW planning.
    {
        std::lock_guard<std::mutex> lock(aet::fftw_planner_mutex());
        std::vector<float> in(64, 1.0f);
        std::vector<fftwf_complex> out(33);
        fftwf_plan p = fftwf_plan_dft_r2c_1d(64, in.data(), out.data(), FFTW_ESTIMATE);
        fftwf_execute(p);
        if (std::abs(out[0][0] - 64.0f) > 1e-4f) ++failures;
        fftwf_destroy_plan(p);
    }
    // The core's errors name the argument.
    try {
        aet::project_volume(vol.data(), s, rots, ndy, -1, 1);
        ++failures;
    } catch (const std::invalid_argument& e) {
        std::printf("refused: %s\n", e.what());
    }
    std::printf("%s\n", failures ? "FAILED" : "consume: OK");
    return failures ? 1 : 0;
}
