#include <aetcore/projector.hpp>
#include <aetcore/memory.hpp>
#include <algorithm>
#include <cmath>
#include <limits>

namespace aet {
namespace {

// Integer w range [wlo, whi] along p(w) = b + w d for which p lies strictly inside the open box
// (lo_a, hi_a) on every axis. Returns false when the ray misses the box.
bool ray_interval(const double b[3], const double d[3], const double lo[3], const double hi[3],
                  long& wlo, long& whi) {
    double tlo = -std::numeric_limits<double>::infinity();
    double thi = std::numeric_limits<double>::infinity();
    for (int a = 0; a < 3; ++a) {
        // An empty box on an axis (a volume of one voxel there, with the interior margins of
        // interior_range) holds no sample: without this check the swapped t bounds below made a
        // non-empty interval of width 2 eps / |d| at grazing angles, and the interior loop then
        // read and wrote a whole slice beyond the volume (found by fuzzing under ASan).
        if (!(lo[a] < hi[a])) return false;
        if (std::abs(d[a]) < 1e-12) {
            if (!(b[a] > lo[a] && b[a] < hi[a])) return false;
            continue;
        }
        double t1 = (lo[a] - b[a]) / d[a], t2 = (hi[a] - b[a]) / d[a];
        if (t1 > t2) std::swap(t1, t2);
        tlo = std::max(tlo, t1);
        thi = std::min(thi, t2);
    }
    if (!(tlo < thi)) return false;
    wlo = static_cast<long>(std::ceil(tlo));
    whi = static_cast<long>(std::floor(thi));
    return wlo <= whi;
}

struct RayFrame {
    double b[3];  // index-space position of the sample w = 0
    double d[3];  // index-space step per unit w
};

inline RayFrame ray_frame(const Mat3& R, double u, double v, Shape3 s) {
    RayFrame f;
    const double c[3] = {double(s.nx / 2), double(s.ny / 2), double(s.nz / 2)};
    for (int a = 0; a < 3; ++a) {
        f.b[a] = R(a, 0) * u + R(a, 1) * v + c[a];
        f.d[a] = R(a, 2);
    }
    return f;
}

// A rotation about y only (single-axis tilt): the ray stays in the volume slice y = v + ny/2, so
// interpolation is bilinear in (x, z) and every detector row belongs to one slice.
inline bool is_y_tilt(const Mat3& R) {
    return std::abs(R(1, 1) - 1.0) < 1e-12 && std::abs(R(0, 1)) < 1e-12 && std::abs(R(2, 1)) < 1e-12 &&
           std::abs(R(1, 0)) < 1e-12 && std::abs(R(1, 2)) < 1e-12;
}

// floor() for values > -1 (guaranteed inside the ray's interval): cheaper than std::floor.
inline index_t floor_gt_m1(double x) { return index_t(x + 1.0) - 1; }

// The sub-range [ilo, ihi] of [wlo, whi] where both bilinear taps of x and z are inside the slice
// (so the loop there needs no bounds checks). Empty when ilo > ihi.
inline void interior_range(double bx, double bz, double dx, double dz, index_t nx, index_t nz, long wlo,
                           long whi, long& ilo, long& ihi) {
    const double b[3] = {bx, 0.0, bz}, d[3] = {dx, 0.0, dz};
    // A small margin keeps rounding at the ends of the range from reaching outside the slice.
    const double eps = 1e-6;
    const double lo[3] = {eps, -1.0, eps}, hi[3] = {double(nx - 1) - eps, 1.0, double(nz - 1) - eps};
    if (!ray_interval(b, d, lo, hi, ilo, ihi)) { ilo = whi + 1; ihi = whi; return; }
    ilo = std::max(ilo, wlo);
    ihi = std::min(ihi, whi);
}

// Visit every in-bounds bilinear tap (slice index, weight) of the samples w = wlo..whi of one ray
// in the slice `sl` (rows z, stride sz; columns x). The forward projection and its adjoint both
// walk the ray through this one function, so they are exact transposes by construction.
template <class Tap>
inline void ray_taps_xz(index_t sz, index_t nx, index_t nz, double bx, double bz, double dx, double dz,
                        long wlo, long whi, Tap&& tap) {
    long ilo, ihi;
    interior_range(bx, bz, dx, dz, nx, nz, wlo, whi, ilo, ihi);
    for (long w = wlo; w <= whi; ++w) {
        const double x = bx + w * dx, z = bz + w * dz;
        const index_t x0 = floor_gt_m1(x), z0 = floor_gt_m1(z);
        const double fx = x - double(x0), fz = z - double(z0);
        const index_t i = z0 * sz + x0;
        if (w >= ilo && w <= ihi) {  // all four taps inside: no checks
            tap(i, (1 - fx) * (1 - fz));
            tap(i + 1, fx * (1 - fz));
            tap(i + sz, (1 - fx) * fz);
            tap(i + sz + 1, fx * fz);
            continue;
        }
        for (int a = 0; a < 2; ++a) {
            const index_t zi = z0 + a;
            if (zi < 0 || zi >= nz) continue;
            const double wz = a ? fz : 1 - fz;
            if (x0 >= 0 && x0 < nx) tap(zi * sz + x0, (1 - fx) * wz);
            if (x0 + 1 >= 0 && x0 + 1 < nx) tap(zi * sz + x0 + 1, fx * wz);
        }
    }
}

// Sum of bilinear samples along one ray in the slice.
inline double ray_sum_xz(const float* sl, index_t sz, index_t nx, index_t nz, double bx, double bz,
                         double dx, double dz, long wlo, long whi) {
    double acc = 0.0;
    ray_taps_xz(sz, nx, nz, bx, bz, dx, dz, wlo, whi, [&](index_t i, double w) { acc += w * sl[i]; });
    return acc;
}

// The adjoint of ray_sum_xz: scatter `val` along the ray into the slice.
inline void ray_scatter_xz(float* sl, index_t sz, index_t nx, index_t nz, double bx, double bz,
                           double dx, double dz, long wlo, long whi, double val) {
    ray_taps_xz(sz, nx, nz, bx, bz, dx, dz, wlo, whi, [&](index_t i, double w) { sl[i] += float(w * val); });
}

// Visit every in-bounds trilinear tap (voxel index, weight) of the samples w = wlo..whi of one ray
// (index-space position b + w d), restricted to the voxels whose coordinate on axis `ca` (0 x, 1 y,
// 2 z) lies in [c0, c1) (the whole volume: ca = 2, c0 = 0, c1 = nz). Samples whose eight taps are all
// inside take a path without checks (the range where they are is found once per ray, as in
// ray_taps_xz) and are handed whole to `cell(i, fx, fy, fz)`: the cell's voxel i = (x0, y0, z0) and the
// fractional offsets, whose eight taps are i + {0, 1} + {0, sy} + {0, sz} with the weights
// (1 - fx or fx) (1 - fy or fy) (1 - fz or fz) (so the forward projection can sum them as a tree, not
// one long chain of additions); the others tap by tap, `tap(i, wx, wy, wz)` (single precision, the
// weight the product of the three). A back-projected value is added to a voxel with the same float
// operations on either path, so the result does not depend on where the slabs split the volume
// (the thread count). The forward projection and its adjoint both walk the ray through this
// one function, so they are exact transposes by construction. Requires every coordinate > -1 on
// [wlo, whi] (the samples of ray_interval with the box (-1, n)).
template <class Tap, class Cell>
inline void ray_taps_xyz(Shape3 s, const double b[3], const double d[3], long wlo, long whi, int ca, index_t c0,
                         index_t c1, Tap&& tap, Cell&& cell) {
    const index_t sy = s.nx, sz = s.nx * s.ny;
    index_t nlo[3] = {0, 0, 0}, nhi[3] = {s.nx, s.ny, s.nz};  // allowed tap index range [nlo, nhi)
    nlo[ca] = c0;
    nhi[ca] = c1;
    const double eps = 1e-6;
    double lo[3], hi[3];
    for (int a = 0; a < 3; ++a) {
        lo[a] = double(nlo[a]) + eps;
        hi[a] = double(nhi[a] - 1) - eps;
    }
    long ilo = whi + 1, ihi = whi;  // empty unless the ray has an interior part
    if (ray_interval(b, d, lo, hi, ilo, ihi)) {
        ilo = std::max(ilo, wlo);
        ihi = std::min(ihi, whi);
        if (ilo > ihi) { ilo = whi + 1; ihi = whi; }
    } else {
        ilo = whi + 1;
        ihi = whi;
    }
    auto checked = [&](long w) {
        const double p[3] = {b[0] + w * d[0], b[1] + w * d[1], b[2] + w * d[2]};
        index_t i0[3];
        float f[3];
        for (int a = 0; a < 3; ++a) {
            i0[a] = floor_gt_m1(p[a]);
            f[a] = float(p[a] - double(i0[a]));
        }
        for (int az = 0; az < 2; ++az) {
            const index_t zi = i0[2] + az;
            if (zi < nlo[2] || zi >= nhi[2]) continue;
            const float wz = az ? f[2] : 1 - f[2];
            for (int ay = 0; ay < 2; ++ay) {
                const index_t yi = i0[1] + ay;
                if (yi < nlo[1] || yi >= nhi[1]) continue;
                const float wy = ay ? f[1] : 1 - f[1];
                for (int ax = 0; ax < 2; ++ax) {
                    const index_t xi = i0[0] + ax;
                    if (xi < nlo[0] || xi >= nhi[0]) continue;
                    tap(zi * sz + yi * sy + xi, ax ? f[0] : 1 - f[0], wy, wz);
                }
            }
        }
    };
    for (long w = wlo; w < ilo; ++w) checked(w);
    for (long w = ilo; w <= ihi; ++w) {  // all eight taps inside: no checks
        const double x = b[0] + w * d[0], y = b[1] + w * d[1], z = b[2] + w * d[2];
        const index_t x0 = index_t(x), y0 = index_t(y), z0 = index_t(z);  // >= 0 here: truncation is floor
        cell(z0 * sz + y0 * sy + x0, x - double(x0), y - double(y0), z - double(z0));
    }
    for (long w = std::max(ihi + 1, wlo); w <= whi; ++w) checked(w);
}

// The axis (0 x, 1 y, 2 z) along which the rays of every rotation move least (the smallest largest
// |direction component|): the back-projection splits the volume into slabs across it, so that a ray
// meets as few slabs as possible (y for a tilt series about y, even with small out-of-axis angles).
int flattest_axis(const std::vector<Mat3>& rotations) {
    double worst[3] = {0.0, 0.0, 0.0};
    for (const Mat3& R : rotations)
        for (int a = 0; a < 3; ++a) worst[a] = std::max(worst[a], std::abs(R(a, 2)));
    int best = 2;
    for (int a : {1, 0})
        if (worst[a] < worst[best]) best = a;
    return best;
}

bool all_y_tilts(const std::vector<Mat3>& rotations) {
    for (const Mat3& R : rotations)
        if (!is_y_tilt(R)) return false;
    return true;
}

// Checks shared by both overloads; returns the resolved thread count.
int check_project(const float* vol, Shape3 s, const std::vector<Mat3>& rotations, index_t ndy, index_t ndx,
                  int threads) {
    require_shape(s, "volume");
    require_size(ndy, "ndy");
    require_size(ndx, "ndx");
    require_data(vol, s.count(), "volume");
    require_finite_rotations(rotations, "rotations");
    return resolve_threads(threads);
}

// Bytes of the work arrays of project_volume: the (y, z, x) copy of the volume for a single-axis tilt.
double project_work_bytes(Shape3 s, const std::vector<Mat3>& rotations) {
    return all_y_tilts(rotations) ? 4.0 * s.count() : 0.0;
}

int check_backproject(const float* proj, index_t ndy, index_t ndx, const std::vector<Mat3>& rotations, Shape3 s,
                      int threads) {
    require_size(ndy, "ndy");
    require_size(ndx, "ndx");
    require_shape(s, "shape");
    require_data(proj, double(rotations.size()) * double(ndy) * double(ndx), "projections");
    require_finite_rotations(rotations, "rotations");
    return resolve_threads(threads);
}

// Bytes of the work arrays of backproject_volume: one x-z slice per thread for a single-axis tilt.
double backproject_work_bytes(Shape3 s, const std::vector<Mat3>& rotations, int nt) {
    return all_y_tilts(rotations) ? 4.0 * nt * double(s.nz) * double(s.nx) : 0.0;
}

void project_impl(const float* vol, Shape3 s, const std::vector<Mat3>& rotations, index_t ndy, index_t ndx,
                  float* out, int nt);
void backproject_impl(const float* proj, index_t ndy, index_t ndx, const std::vector<Mat3>& rotations, Shape3 s,
                      float* vol, int nt);

}  // namespace

void require_finite_rotations(const std::vector<Mat3>& rotations, const char* name) {
    for (std::size_t k = 0; k < rotations.size(); ++k)
        if (!rotations[k].allFinite())
            throw std::invalid_argument(std::string(name) + ": matrix " + std::to_string(k) +
                                        " has a non-finite entry");
}

void project_volume(const float* vol, Shape3 s, const std::vector<Mat3>& rotations,
                    index_t ndy, index_t ndx, float* out, int threads) {
    const int nt = check_project(vol, s, rotations, ndy, ndx, threads);
    require_data(out, double(rotations.size()) * double(ndy) * double(ndx), "out");
    check_memory(project_work_bytes(s, rotations), "projecting a volume");
    project_impl(vol, s, rotations, ndy, ndx, out, nt);
}

std::vector<float> project_volume(const float* vol, Shape3 s, const std::vector<Mat3>& rotations,
                                  index_t ndy, index_t ndx, int threads) {
    const int nt = check_project(vol, s, rotations, ndy, ndx, threads);
    check_memory(4.0 * double(rotations.size()) * double(ndy) * double(ndx) + project_work_bytes(s, rotations),
                 "projecting a volume");
    std::vector<float> out(std::size_t(rotations.size()) * std::size_t(ndy) * std::size_t(ndx));
    project_impl(vol, s, rotations, ndy, ndx, out.data(), nt);
    return out;
}

void backproject_volume(const float* proj, index_t ndy, index_t ndx, const std::vector<Mat3>& rotations, Shape3 s,
                        float* vol, int threads) {
    const int nt = check_backproject(proj, ndy, ndx, rotations, s, threads);
    require_data(vol, s.count(), "vol");
    check_memory(backproject_work_bytes(s, rotations, nt), "back-projecting a tilt series");
    backproject_impl(proj, ndy, ndx, rotations, s, vol, nt);
}

std::vector<float> backproject_volume(const float* proj, index_t ndy, index_t ndx,
                                      const std::vector<Mat3>& rotations, Shape3 s, int threads) {
    const int nt = check_backproject(proj, ndy, ndx, rotations, s, threads);
    check_memory(4.0 * s.count() + backproject_work_bytes(s, rotations, nt), "back-projecting a tilt series");
    std::vector<float> vol(std::size_t(s.size()));
    backproject_impl(proj, ndy, ndx, rotations, s, vol.data(), nt);
    return vol;
}

namespace {

void project_impl(const float* vol, Shape3 s, const std::vector<Mat3>& rotations, index_t ndy, index_t ndx,
                  float* out, int nt) {
    const index_t K = index_t(rotations.size());
    const double lo[3] = {-1.0, -1.0, -1.0};
    const double hi[3] = {double(s.nx), double(s.ny), double(s.nz)};
    if (all_y_tilts(rotations)) {
        // Single-axis tilt: each detector row reads one y slice. A (y, z, x) copy makes every slice
        // contiguous (it then stays in cache while all rays of the row cross it).
        std::vector<float> yzx(std::size_t(s.size()));
#pragma omp parallel for schedule(static) num_threads(nt)
        for (index_t y = 0; y < s.ny; ++y)
            for (index_t z = 0; z < s.nz; ++z)
                std::copy(vol + (z * s.ny + y) * s.nx, vol + (z * s.ny + y + 1) * s.nx,
                          yzx.data() + (y * s.nz + z) * s.nx);
#pragma omp parallel for collapse(2) schedule(dynamic, 4) num_threads(nt)
        for (index_t iv = 0; iv < ndy; ++iv) {
            for (index_t k = 0; k < K; ++k) {
                const Mat3& R = rotations[k];
                float* row = out + (k * ndy + iv) * ndx;
                const index_t yi = iv - ndy / 2 + s.ny / 2;
                if (yi < 0 || yi >= s.ny) {
                    std::fill(row, row + ndx, 0.0f);
                    continue;
                }
                const float* sl = yzx.data() + yi * s.nz * s.nx;
                const double v = double(iv - ndy / 2);
                for (index_t iu = 0; iu < ndx; ++iu) {
                    const RayFrame f = ray_frame(R, double(iu - ndx / 2), v, s);
                    long wlo, whi;
                    row[iu] = ray_interval(f.b, f.d, lo, hi, wlo, whi)
                                  ? float(ray_sum_xz(sl, s.nx, s.nx, s.nz, f.b[0], f.b[2], f.d[0], f.d[2],
                                                     wlo, whi))
                                  : 0.0f;
                }
            }
        }
        return;
    }
    const index_t sy = s.nx, sz = s.nx * s.ny;
#pragma omp parallel for collapse(2) schedule(dynamic, 4) num_threads(nt)
    for (index_t iv = 0; iv < ndy; ++iv) {  // rows of the same iv, consecutive, read nearby voxels
        for (index_t k = 0; k < K; ++k) {
            const Mat3& R = rotations[k];
            float* row = out + (k * ndy + iv) * ndx;
            const double v = double(iv - ndy / 2);
            for (index_t iu = 0; iu < ndx; ++iu) {
                const RayFrame f = ray_frame(R, double(iu - ndx / 2), v, s);
                long wlo, whi;
                double acc = 0.0;
                if (ray_interval(f.b, f.d, lo, hi, wlo, whi))
                    ray_taps_xyz(s, f.b, f.d, wlo, whi, 2, 0, s.nz,
                                 [&](index_t i, float wx, float wy, float wz) { acc += double(wx * wy * wz) * vol[i]; },
                                 [&](index_t i, double dfx, double dfy, double dfz) {
                                     const float* p = vol + i;
                                     const float fx = float(dfx), fy = float(dfy), fz = float(dfz), gx = 1 - fx;
                                     const float c00 = gx * p[0] + fx * p[1], c01 = gx * p[sy] + fx * p[sy + 1];
                                     const float c10 = gx * p[sz] + fx * p[sz + 1];
                                     const float c11 = gx * p[sz + sy] + fx * p[sz + sy + 1];
                                     acc += double((1 - fz) * ((1 - fy) * c00 + fy * c01) + fz * ((1 - fy) * c10 + fy * c11));
                                 });
                row[iu] = float(acc);
            }
        }
    }
}

void backproject_impl(const float* proj, index_t ndy, index_t ndx, const std::vector<Mat3>& rotations, Shape3 s,
                      float* vol, int nt) {
    const index_t K = index_t(rotations.size());
    const index_t sy = s.nx, sz = s.nx * s.ny;
    if (all_y_tilts(rotations)) {
        // Each task owns one y slice, fed by one detector row of every image: no races, and the
        // contributions arrive in the same (k, iu, w) order whatever the thread count.
        const double lo[3] = {-1.0, -1.0, -1.0};
        const double hi[3] = {double(s.nx), double(s.ny), double(s.nz)};
#pragma omp parallel num_threads(nt)
        {
        std::vector<float> buf(std::size_t(s.nz * s.nx));  // the slice, contiguous (stays in cache)
        float* sl = buf.data();
#pragma omp for schedule(dynamic, 1)
        for (index_t yi = 0; yi < s.ny; ++yi) {
            std::fill(buf.begin(), buf.end(), 0.0f);
            const index_t iv = yi - s.ny / 2 + ndy / 2;
            const double v = double(iv - ndy / 2);
            for (index_t k = 0; iv >= 0 && iv < ndy && k < K; ++k) {
                const Mat3& R = rotations[k];
                const float* row = proj + (k * ndy + iv) * ndx;
                for (index_t iu = 0; iu < ndx; ++iu) {
                    if (row[iu] == 0.0f) continue;
                    const RayFrame f = ray_frame(R, double(iu - ndx / 2), v, s);
                    long wlo, whi;
                    if (!ray_interval(f.b, f.d, lo, hi, wlo, whi)) continue;
                    ray_scatter_xz(sl, s.nx, s.nx, s.nz, f.b[0], f.b[2], f.d[0], f.d[2], wlo, whi, row[iu]);
                }
            }
            for (index_t z = 0; z < s.nz; ++z)
                std::copy(sl + z * s.nx, sl + (z + 1) * s.nx, vol + z * sz + yi * sy);
        }
        }
        return;
    }
    // Each task owns a slab of planes across the axis the rays move least along (y for a tilt series
    // about y) and writes only there: no races, and every voxel receives its contributions in the same
    // (k, iv, iu, w) order whatever the thread count. A detector row whose rays cannot reach the slab
    // (bounded over the row's pixels and the longest ray in the box) is skipped whole.
    const int ca = flattest_axis(rotations);
    const index_t nca = ca == 0 ? s.nx : (ca == 1 ? s.ny : s.nz);
    const index_t n_slabs = std::max<index_t>(1, std::min<index_t>(std::max<index_t>(1, nca / 4), index_t(nt) * 4));
    const double cen[3] = {double(s.nx / 2), double(s.ny / 2), double(s.nz / 2)};
    // |w| <= wmax for every sample inside the box (the farthest corner from the centre, plus one)
    double wmax = 1.0;
    {
        double r2 = 0.0;
        const double n[3] = {double(s.nx), double(s.ny), double(s.nz)};
        for (int a = 0; a < 3; ++a) { const double e = std::max(cen[a] + 1.0, n[a] - cen[a]); r2 += e * e; }
        wmax += std::sqrt(r2);
    }
    const double umin = double(-(ndx / 2)), umax = double(ndx - 1 - ndx / 2);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (index_t slab = 0; slab < n_slabs; ++slab) {
        const index_t c0 = nca * slab / n_slabs, c1 = nca * (slab + 1) / n_slabs;
        // zero the slab's voxels
        for (index_t z = 0; z < s.nz; ++z)
            for (index_t y = 0; y < s.ny; ++y) {
                float* line = vol + z * sz + y * sy;
                if (ca == 0) std::fill(line + c0, line + c1, 0.0f);
                else if ((ca == 1 ? y : z) >= c0 && (ca == 1 ? y : z) < c1) std::fill(line, line + s.nx, 0.0f);
            }
        double lo[3] = {-1.0, -1.0, -1.0};
        double hi[3] = {double(s.nx), double(s.ny), double(s.nz)};
        lo[ca] = double(c0) - 1.0;
        hi[ca] = double(c1);
        for (index_t k = 0; k < K; ++k) {
            const Mat3& R = rotations[k];
            // the coordinate on axis ca of a sample: R(ca,0) u + R(ca,1) v + R(ca,2) w + cen[ca]
            const double spread = std::max(std::abs(R(ca, 0) * umin), std::abs(R(ca, 0) * umax)) +
                                  std::abs(R(ca, 2)) * wmax;
            for (index_t iv = 0; iv < ndy; ++iv) {
                const double v = double(iv - ndy / 2);
                const double mid = R(ca, 1) * v + cen[ca];
                if (mid + spread <= lo[ca] || mid - spread >= hi[ca]) continue;
                const float* row = proj + (k * ndy + iv) * ndx;
                for (index_t iu = 0; iu < ndx; ++iu) {
                    const double val = row[iu];
                    if (val == 0.0) continue;
                    const float fval = row[iu];
                    const RayFrame f = ray_frame(R, double(iu - ndx / 2), v, s);
                    long wlo, whi;
                    if (!ray_interval(f.b, f.d, lo, hi, wlo, whi)) continue;
                    ray_taps_xyz(s, f.b, f.d, wlo, whi, ca, c0, c1,
                                 [&](index_t i, float wx, float wy, float wz) { vol[i] += wx * (wy * (wz * fval)); },
                                 [&](index_t i, double dfx, double dfy, double dfz) {
                                     float* p = vol + i;
                                     const float fx = float(dfx), fy = float(dfy), fz = float(dfz), gx = 1 - fx, gy = 1 - fy;
                                     const float v0 = (1 - fz) * fval, v1 = fz * fval;
                                     const float a00 = gy * v0, a01 = fy * v0, a10 = gy * v1, a11 = fy * v1;
                                     p[0] += gx * a00;
                                     p[1] += fx * a00;
                                     p[sy] += gx * a01;
                                     p[sy + 1] += fx * a01;
                                     p[sz] += gx * a10;
                                     p[sz + 1] += fx * a10;
                                     p[sz + sy] += gx * a11;
                                     p[sz + sy + 1] += fx * a11;
                                 });
                }
            }
        }
    }
}

}  // namespace

}  // namespace aet
