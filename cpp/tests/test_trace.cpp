// Tracing in the core: known Gaussian atoms rendered on the voxel grid (render_atoms) are found at
// their positions by the polynomial and the Gaussian fits; the minimum distance keeps the brighter
// of two close atoms; a fit that lands beyond the border keeps its voxel (status 4); the defaults
// are the documented ones and bad options are refused by name.
#include <aetcore/atoms.hpp>
#include <aetcore/trace.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"

using namespace aet;

int main() {
    const Shape3 s{32, 32, 32};
    // 30 atoms of sigma 1 voxel, at least 7 voxels apart (beyond the neighbours' fit boxes) and 3 voxels from the border, at
    // sub-voxel positions; heights 1 (20 atoms) and 0.5 (10 atoms).
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> u(-12.5, 12.5);
    std::vector<double> pos;  // (x, y, z) voxels from the centre index 16
    std::vector<std::int32_t> sp;
    while (sp.size() < 30) {
        const double x = u(rng), y = u(rng), z = u(rng);
        bool ok = true;
        for (std::size_t j = 0; j < sp.size() && ok; ++j) {
            const double dx = x - pos[3 * j], dy = y - pos[3 * j + 1], dz = z - pos[3 * j + 2];
            ok = dx * dx + dy * dy + dz * dz >= 49;
        }
        if (!ok) continue;
        pos.insert(pos.end(), {x, y, z});
        sp.push_back(sp.size() < 20 ? 0 : 1);
    }
    AtomSet a;
    a.positions = pos.data();
    a.species = sp.data();
    a.n = index_t(sp.size());
    a.heights = {1.0, 0.5};
    a.sigmas = {1.0, 1.0};
    const std::vector<float> vol = render_atoms(a, s, 2);

    for (int fit : {1, 2}) {
        TraceOptions opt;
        opt.fit = fit;
        opt.threads = 2;
        const TraceResult r = trace_atoms(vol.data(), s, opt);
        AET_CHECK(r.size() == 30);
        double worst = 0;
        for (index_t i = 0; i < a.n; ++i) {
            // nearest traced atom, array index (z, y, x) = object (x, y, z) reversed + 16
            double best = 1e30;
            for (index_t j = 0; j < r.size(); ++j) {
                const double dz = r.position[3 * j] - (pos[3 * i + 2] + 16), dy = r.position[3 * j + 1] - (pos[3 * i + 1] + 16),
                             dx = r.position[3 * j + 2] - (pos[3 * i] + 16);
                best = std::min(best, std::sqrt(dx * dx + dy * dy + dz * dz));
            }
            worst = std::max(worst, best);
        }
        int converged = 0;
        for (index_t j = 0; j < r.size(); ++j) converged += r.status[j] == fit_converged;
        std::printf("fit %d: %lld atoms, %d converged, largest position error %.4f voxel\n", fit, (long long)r.size(),
                    converged, worst);
        AET_CHECK(converged == 30);
        // noise-free, isolated atoms: the quartic fit is within 0.1 voxel (its bias on a Gaussian of
        // sigma 1 voxel at a sub-voxel offset: 0.07 measured), the
        // Gaussian fit (the model the atoms were rendered with) exact to its tolerance
        AET_CHECK(worst < (fit == 1 ? 0.1 : 1e-3));
        // brightest first: the 20 atoms of height 1 before the 10 of height 0.5
        AET_CHECK(r.intensity[19] > r.intensity[20]);
    }

    {  // min_distance in Å with pixel_size: 8 voxels at 0.5 Å per voxel is 4 Å
        TraceOptions opt;
        opt.pixel_size = 0.5;
        opt.min_distance = 4.0;  // 8 voxels: some pairs clash now
        const TraceResult r = trace_atoms(vol.data(), s, opt);
        AET_CHECK(r.size() < 30);
        for (index_t i = 0; i < r.size(); ++i)
            for (index_t j = i + 1; j < r.size(); ++j) {
                double d2 = 0;
                for (int c = 0; c < 3; ++c) d2 += std::pow(r.position[3 * i + c] - r.position[3 * j + c], 2);
                AET_CHECK(d2 >= 64.0);
            }
    }

    {  // an atom centred 0.9 voxel outside the volume: the Gaussian fit lands outside, the atom
       // keeps its voxel maximum with status 4 (and the atoms inside are unaffected)
        std::vector<double> p2 = {-16.9, 0.0, 0.0, 0.0, -4.0, 0.0, -5.0, 3.0, -4.0};
        std::vector<std::int32_t> s2 = {0, 0, 0};
        AtomSet b;
        b.positions = p2.data();
        b.species = s2.data();
        b.n = 3;
        b.heights = {1.0};
        b.sigmas = {1.2};
        const std::vector<float> v2 = render_atoms(b, s, 2);
        TraceOptions opt;
        opt.fit = 2;
        opt.max_drift = 3.0;
        opt.min_distance = 1.0;
        const TraceResult r = trace_atoms(v2.data(), s, opt);
        AET_CHECK(r.size() == 3);
        int edge = 0;
        for (index_t j = 0; j < r.size(); ++j) {
            if (r.voxel[3 * j + 2] == 0) {
                ++edge;
                AET_CHECK(r.status[j] == fit_left_volume);
                AET_CHECK(r.position[3 * j + 2] == 0.0 && r.position[3 * j] == double(r.voxel[3 * j]));
            } else {
                AET_CHECK(r.status[j] == fit_converged);
            }
        }
        AET_CHECK(edge == 1);
    }

    {  // defaults and refusals
        const TraceOptions d;
        AET_CHECK(d.max_drift == 1.5 && d.min_distance == 2.0 && d.fit == 1 && d.fit_radius == 2 && std::isnan(d.threshold));
        TraceOptions bad;
        bad.max_drift = 0;
        AET_CHECK_THROWS(trace_atoms(vol.data(), s, bad), std::invalid_argument, "max_drift");
        bad = TraceOptions();
        bad.fit_radius = 1;
        AET_CHECK_THROWS(trace_atoms(vol.data(), s, bad), std::invalid_argument, "fit_radius");
        AET_CHECK_THROWS(trace_atoms(vol.data(), Shape3{2, 32, 32}, TraceOptions()), std::invalid_argument, "volume");
        std::vector<float> nan = vol;
        nan[5] = NAN;
        AET_CHECK_THROWS(trace_atoms(nan.data(), s, TraceOptions()), std::invalid_argument, "volume");
    }
    return aet_test::report("test_trace");
}
