#include "gridding.hpp"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace aet {
namespace {

struct Record {
    std::int64_t index;
    float w;
    float re, im;
};

inline index_t wrap(index_t k, index_t n) { return ((k % n) + n) % n; }

}  // namespace

GriddedData grid_projections(const float* tilts, index_t K, index_t ny, index_t nx,
                             const std::vector<Mat3>& rotations, index_t N,
                             const GriddingOptions& opt) {
    const index_t nh = N / 2 + 1;
    const double r = opt.radius;
    const int nt = resolve_threads(opt.threads);
    const index_t kmax = N / 2 - 1;  // Nyquist rows and columns are left out (no Hermitian twin)
    const index_t up = std::max(1, opt.upsample);
    const index_t M = up * N, mh = M / 2 + 1, smax = up * kmax;  // padded image side, sample range
    FftPlan plan = plan_r2c_2d(int(M), int(M));
    std::vector<std::vector<Record>> per_projection(K);

#pragma omp parallel num_threads(nt)
    {
        FftwBuffer<float> pad(static_cast<std::size_t>(M * M));
        FftwBuffer<fftwf_complex> spec(static_cast<std::size_t>(M * mh));
#pragma omp for schedule(dynamic, 1)
        for (index_t k = 0; k < K; ++k) {
            // Zero-pad with the image origin (ny/2, nx/2) moved to index 0 (wrap-around).
            std::memset(pad.data(), 0, sizeof(float) * pad.size());
            const float* img = tilts + k * ny * nx;
            for (index_t iy = 0; iy < ny; ++iy) {
                float* row = pad.data() + wrap(iy - ny / 2, M) * M;
                for (index_t ix = 0; ix < nx; ++ix) row[wrap(ix - nx / 2, M)] = img[iy * nx + ix];
            }
            fftwf_execute_dft_r2c(plan.get(), pad.data(), spec.data());
            const Mat3& R = rotations[k];
            std::vector<Record>& out = per_projection[k];
            const double step = 1.0 / double(up);
            for (index_t sv = -smax; sv <= smax; ++sv) {
                for (index_t su = -smax; su <= smax; ++su) {
                    const double ku = su * step, kv = sv * step;
                    const double qx = R(0, 0) * ku + R(0, 1) * kv;
                    // A sample with qx < -r only reaches kx < 0; its Hermitian twin (-ku, -kv),
                    // also in this plane, reaches the stored half instead.
                    if (qx < -r) continue;
                    const double qy = R(1, 0) * ku + R(1, 1) * kv;
                    const double qz = R(2, 0) * ku + R(2, 1) * kv;
                    const index_t x0 = std::max<index_t>(0, index_t(std::ceil(qx - r)));
                    const index_t x1 = std::min<index_t>(kmax, index_t(std::floor(qx + r)));
                    const index_t y0 = std::max<index_t>(-kmax, index_t(std::ceil(qy - r)));
                    const index_t y1 = std::min<index_t>(kmax, index_t(std::floor(qy + r)));
                    const index_t z0 = std::max<index_t>(-kmax, index_t(std::ceil(qz - r)));
                    const index_t z1 = std::min<index_t>(kmax, index_t(std::floor(qz + r)));
                    if (x0 > x1 || y0 > y1 || z0 > z1) continue;
                    float re, im;
                    if (su >= 0) {
                        const fftwf_complex& c = spec.data()[wrap(sv, M) * mh + su];
                        re = c[0]; im = c[1];
                    } else {
                        const fftwf_complex& c = spec.data()[wrap(-sv, M) * mh + (-su)];
                        re = c[0]; im = -c[1];
                    }
                    for (index_t gz = z0; gz <= z1; ++gz)
                        for (index_t gy = y0; gy <= y1; ++gy)
                            for (index_t gx = x0; gx <= x1; ++gx) {
                                const double d = std::sqrt((gx - qx) * (gx - qx) + (gy - qy) * (gy - qy) +
                                                           (gz - qz) * (gz - qz));
                                if (d > r) continue;
                                const std::int64_t idx = (wrap(gz, N) * N + wrap(gy, N)) * nh + gx;
                                out.push_back({idx, float(gridding_weight(d, r)), re, im});
                            }
                }
            }
        }
    }

    // Concatenate in projection order and stable-sort by grid index: every grid point then sums
    // its contributions in the same order whatever the thread count (deterministic results).
    std::vector<std::size_t> offsets(K + 1, 0);
    for (index_t k = 0; k < K; ++k) offsets[k + 1] = offsets[k] + per_projection[k].size();
    std::vector<Record> all(offsets[K]);
    for (index_t k = 0; k < K; ++k) {
        std::copy(per_projection[k].begin(), per_projection[k].end(), all.begin() + offsets[k]);
        std::vector<Record>().swap(per_projection[k]);
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const Record& a, const Record& b) { return a.index < b.index; });

    GriddedData g;
    g.n = N;
    for (std::size_t i = 0; i < all.size();) {
        std::size_t j = i;
        double sw = 0, sre = 0, sim = 0;
        for (; j < all.size() && all[j].index == all[i].index; ++j) {
            sw += all[j].w;
            sre += double(all[j].w) * all[j].re;
            sim += double(all[j].w) * all[j].im;
        }
        const std::int64_t idx = all[i].index;
        const index_t gx = idx % nh, gy = (idx / nh) % N, gz = idx / (nh * N);
        const double fy = gy < N / 2 ? gy : gy - N, fz = gz < N / 2 ? gz : gz - N;
        g.index.push_back(idx);
        g.value.emplace_back(float(sre / sw), float(sim / sw));
        g.weight.push_back(float(sw));
        g.radius.push_back(float(std::sqrt(double(gx) * gx + fy * fy + fz * fz)));
        i = j;
    }
    return g;
}

}  // namespace aet
