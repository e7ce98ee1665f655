// Atom tracing: local maxima, sub-voxel fits, minimum distance. See trace.hpp.
#include <aetcore/trace.hpp>
#include <aetcore/memory.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace aet {
namespace {

using Vec3 = Eigen::Vector3d;
using Mat3d = Eigen::Matrix3d;

// ---------------------------------------------------------------------------------------------
// Local maxima

struct Candidate {
    index_t index;
    float value;
    bool tie;
};

// Resolve a plateau containing `seed`: one peak (the member nearest the centroid) if no member has a
// strictly higher neighbour, else none. Marks every member in `visited`.
bool resolve_plateau(const float* vol, Shape3 s, index_t seed, std::unordered_set<index_t>& visited, Peak& out) {
    const float v = vol[seed];
    std::vector<index_t> members;
    std::deque<index_t> queue{seed};
    visited.insert(seed);
    bool valid = true;
    while (!queue.empty()) {
        index_t i = queue.front();
        queue.pop_front();
        members.push_back(i);
        index_t z = i / (s.ny * s.nx), y = (i / s.nx) % s.ny, x = i % s.nx;
        for (index_t dz = -1; dz <= 1; ++dz)
            for (index_t dy = -1; dy <= 1; ++dy)
                for (index_t dx = -1; dx <= 1; ++dx) {
                    index_t zz = z + dz, yy = y + dy, xx = x + dx;
                    if ((dz | dy | dx) == 0 || zz < 0 || yy < 0 || xx < 0 || zz >= s.nz || yy >= s.ny || xx >= s.nx)
                        continue;
                    index_t j = (zz * s.ny + yy) * s.nx + xx;
                    float w = vol[j];
                    if (w > v) valid = false;
                    else if (w == v && visited.insert(j).second) queue.push_back(j);
                }
    }
    if (!valid) return false;
    std::sort(members.begin(), members.end());
    double cz = 0, cy = 0, cx = 0;
    for (index_t i : members) {
        cz += double(i / (s.ny * s.nx));
        cy += double((i / s.nx) % s.ny);
        cx += double(i % s.nx);
    }
    const double m = double(members.size());
    cz /= m, cy /= m, cx /= m;
    index_t best = members.front();
    double bestd = 1e300;
    for (index_t i : members) {
        double dz = double(i / (s.ny * s.nx)) - cz, dy = double((i / s.nx) % s.ny) - cy, dx = double(i % s.nx) - cx;
        double d = dz * dz + dy * dy + dx * dx;
        if (d < bestd - 1e-12) bestd = d, best = i;
    }
    out = Peak{best, v};
    return true;
}

// ---------------------------------------------------------------------------------------------
// Polynomial fit

struct Poly {
    std::vector<std::array<int, 3>> exps;  // exponents of (z, y, x)
};

Poly make_poly(int degree) {
    Poly p;
    for (int t = 0; t <= degree; ++t)
        for (int a = t; a >= 0; --a)
            for (int b = t - a; b >= 0; --b) p.exps.push_back({a, b, t - a - b});
    return p;
}

inline double ipow(double v, int n) {
    double r = 1.0;
    for (int i = 0; i < n; ++i) r *= v;
    return r;
}

// Value, gradient and Hessian of sum_k c_k z^a y^b x^c at p = (z, y, x).
void poly_eval(const Poly& poly, const Eigen::VectorXd& c, const Vec3& p, double& f, Vec3& g, Mat3d& H) {
    double pw[3][5];
    for (int d = 0; d < 3; ++d) {
        pw[d][0] = 1.0;
        for (int n = 1; n < 5; ++n) pw[d][n] = pw[d][n - 1] * p[d];
    }
    auto powd = [&](int d, int e) { return e < 0 ? 0.0 : (e < 5 ? pw[d][e] : ipow(p[d], e)); };
    f = 0;
    g.setZero();
    H.setZero();
    for (std::size_t k = 0; k < poly.exps.size(); ++k) {
        const auto& e = poly.exps[k];
        const double ck = c[Eigen::Index(k)];
        if (ck == 0.0) continue;
        double v[3], dv[3], ddv[3];
        for (int d = 0; d < 3; ++d) {
            v[d] = powd(d, e[d]);
            dv[d] = e[d] * powd(d, e[d] - 1);
            ddv[d] = e[d] * (e[d] - 1) * powd(d, e[d] - 2);
        }
        f += ck * v[0] * v[1] * v[2];
        g[0] += ck * dv[0] * v[1] * v[2];
        g[1] += ck * v[0] * dv[1] * v[2];
        g[2] += ck * v[0] * v[1] * dv[2];
        H(0, 0) += ck * ddv[0] * v[1] * v[2];
        H(1, 1) += ck * v[0] * ddv[1] * v[2];
        H(2, 2) += ck * v[0] * v[1] * ddv[2];
        H(0, 1) += ck * dv[0] * dv[1] * v[2];
        H(0, 2) += ck * dv[0] * v[1] * dv[2];
        H(1, 2) += ck * v[0] * dv[1] * dv[2];
    }
    H(1, 0) = H(0, 1);
    H(2, 0) = H(0, 2);
    H(2, 1) = H(1, 2);
}

struct Box {
    index_t z, y, x;         // voxel maximum
    index_t lo[3], hi[3];    // offset range per axis (z, y, x), inclusive, clipped to the volume
    bool full;
};

Box make_box(Shape3 s, index_t index, int radius) {
    Box b;
    b.z = index / (s.ny * s.nx);
    b.y = (index / s.nx) % s.ny;
    b.x = index % s.nx;
    const index_t c[3] = {b.z, b.y, b.x}, n[3] = {s.nz, s.ny, s.nx};
    b.full = true;
    for (int d = 0; d < 3; ++d) {
        b.lo[d] = std::max<index_t>(-radius, -c[d]);
        b.hi[d] = std::min<index_t>(radius, n[d] - 1 - c[d]);
        if (b.lo[d] != -radius || b.hi[d] != radius) b.full = false;
    }
    return b;
}

// Design matrix of `poly` over the box offsets, row order z-major.
Eigen::MatrixXd design(const Poly& poly, const Box& b) {
    index_t n = (b.hi[0] - b.lo[0] + 1) * (b.hi[1] - b.lo[1] + 1) * (b.hi[2] - b.lo[2] + 1);
    Eigen::MatrixXd A(n, Eigen::Index(poly.exps.size()));
    index_t r = 0;
    for (index_t dz = b.lo[0]; dz <= b.hi[0]; ++dz)
        for (index_t dy = b.lo[1]; dy <= b.hi[1]; ++dy)
            for (index_t dx = b.lo[2]; dx <= b.hi[2]; ++dx, ++r)
                for (std::size_t k = 0; k < poly.exps.size(); ++k)
                    A(r, Eigen::Index(k)) = ipow(double(dz), poly.exps[k][0]) * ipow(double(dy), poly.exps[k][1]) *
                                            ipow(double(dx), poly.exps[k][2]);
    return A;
}

Eigen::VectorXd box_values(const float* vol, Shape3 s, const Box& b) {
    index_t n = (b.hi[0] - b.lo[0] + 1) * (b.hi[1] - b.lo[1] + 1) * (b.hi[2] - b.lo[2] + 1);
    Eigen::VectorXd v(n);
    index_t r = 0;
    for (index_t dz = b.lo[0]; dz <= b.hi[0]; ++dz)
        for (index_t dy = b.lo[1]; dy <= b.hi[1]; ++dy)
            for (index_t dx = b.lo[2]; dx <= b.hi[2]; ++dx, ++r)
                v[r] = vol[((b.z + dz) * s.ny + (b.y + dy)) * s.nx + (b.x + dx)];
    return v;
}

// Pseudo-inverse of the full-box quartic design matrix, shared by every interior peak.
struct PolyFitter {
    int radius;
    Poly quartic = make_poly(4), quadratic = make_poly(2);
    Eigen::MatrixXd pinv;  // 35 x (2r+1)^3

    // Only boxes that fit inside the volume can be full, so the shared pseudo-inverse is made only
    // then (a radius beyond the volume used to allocate it anyway). Small boxes keep the complete
    // orthogonal decomposition; above 4096 rows its pseudoInverse() would build a rows x rows
    // matrix (38 GB at radius 20), so the thin SVD (rows x 35) is used instead.
    PolyFitter(int r, Shape3 s) : radius(r) {
        const index_t side = 2 * index_t(r) + 1;
        if (side >= 5 && side <= std::min({s.nz, s.ny, s.nx})) {
            Box b;
            for (int d = 0; d < 3; ++d) b.lo[d] = -r, b.hi[d] = r;
            b.full = true;
            const Eigen::MatrixXd A = design(quartic, b);
            if (A.rows() <= 4096) {
                pinv = A.completeOrthogonalDecomposition().pseudoInverse();
            } else {
                Eigen::BDCSVD<Eigen::MatrixXd> svd(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
                const Eigen::VectorXd sv = svd.singularValues();
                const double tol = sv.size() ? sv[0] * 1e-12 * double(A.rows()) : 0.0;
                Eigen::VectorXd inv(sv.size());
                for (Eigen::Index i = 0; i < sv.size(); ++i) inv[i] = sv[i] > tol ? 1.0 / sv[i] : 0.0;
                pinv = svd.matrixV() * inv.asDiagonal() * svd.matrixU().transpose();
            }
        }
    }

    FitResult fit(const float* vol, Shape3 s, index_t index, double max_drift, int max_iterations) const {
        const Box b = make_box(s, index, radius);
        FitResult res{double(b.z), double(b.y), double(b.x), fit_converged};
        index_t minext = std::min({b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]}) + 1;
        const Poly* poly;
        Eigen::VectorXd coef;
        Eigen::VectorXd v = box_values(vol, s, b);
        if (b.full && pinv.size()) {
            poly = &quartic;
            coef = pinv * v;
        } else {
            if (minext >= 5) poly = &quartic;
            else if (minext >= 3) poly = &quadratic;
            else {
                res.status = fit_not_converged;
                return res;
            }
            Eigen::MatrixXd A = design(*poly, b);
            Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(A);
            if (qr.rank() < A.cols()) {
                res.status = fit_not_converged;
                return res;
            }
            coef = qr.solve(v);
        }
        const double scale = std::max(v.cwiseAbs().maxCoeff(), 1e-300);
        // Argmax on the 3x upsampled +-1 voxel crop.
        Vec3 p = Vec3::Zero(), g;
        Mat3d H;
        double f, best = -1e300;
        for (int iz = -3; iz <= 3; ++iz)
            for (int iy = -3; iy <= 3; ++iy)
                for (int ix = -3; ix <= 3; ++ix) {
                    Vec3 q(iz / 3.0, iy / 3.0, ix / 3.0);
                    poly_eval(*poly, coef, q, f, g, H);
                    if (f > best) best = f, p = q;
                }
        // Newton steps.
        bool converged = false;
        for (int it = 0; it < max_iterations; ++it) {
            poly_eval(*poly, coef, p, f, g, H);
            Eigen::SelfAdjointEigenSolver<Mat3d> es(H);
            if (es.eigenvalues().maxCoeff() >= -1e-9 * scale) {
                res.status = fit_not_maximum;
                return res;
            }
            Vec3 step = -es.eigenvectors() * ((es.eigenvectors().transpose() * g).cwiseQuotient(es.eigenvalues()));
            double sn = step.norm();
            if (sn > 0.5) step *= 0.5 / sn;
            p += step;
            if (p.norm() > max_drift + 3.0) break;  // runaway
            if (sn < 1e-9) {
                converged = true;
                break;
            }
        }
        if (p.norm() > max_drift) {
            res.status = fit_drifted;
            return res;
        }
        if (!converged) {
            res.status = fit_not_converged;
            return res;
        }
        res.z += p[0], res.y += p[1], res.x += p[2];
        return res;
    }
};

// ---------------------------------------------------------------------------------------------
// Gaussian fit (voxel means of an isotropic Gaussian, exact with error functions)

constexpr double kSqrt2Pi = 2.5066282746310002;

inline double phi(double u) { return std::exp(-0.5 * u * u) / kSqrt2Pi; }
inline double Phi(double u) { return 0.5 * std::erfc(-u / std::sqrt(2.0)); }

// Per-axis factor K(t) = sqrt(2 pi) s (Phi(u+) - Phi(u-)), u+- = (t +- 1/2 - c) / s (the voxel mean of
// exp(-(x - c)^2 / (2 s^2))), with dK/dc and dK/ds.
void axis_factor(double c, double s, index_t lo, index_t hi, std::vector<double>& K, std::vector<double>& Kc,
                 std::vector<double>& Ks) {
    const index_t n = hi - lo + 1;
    K.resize(n), Kc.resize(n), Ks.resize(n);
    for (index_t i = 0; i < n; ++i) {
        double t = double(lo + i);
        double up = (t + 0.5 - c) / s, um = (t - 0.5 - c) / s;
        double g = Phi(up) - Phi(um);
        double pp = phi(up), pm = phi(um);
        K[i] = kSqrt2Pi * s * g;
        Kc[i] = -kSqrt2Pi * (pp - pm);
        Ks[i] = kSqrt2Pi * (g - (pp * up - pm * um));
    }
}

struct GaussModel {
    const Box& b;
    const Eigen::VectorXd& v;
    // theta = (B, H, cz, cy, cx, s); returns residuals (model - data) and, if J != nullptr, the Jacobian.
    double eval(const Eigen::Matrix<double, 6, 1>& th, Eigen::VectorXd& r, Eigen::MatrixXd* J) const {
        std::vector<double> K[3], Kc[3], Ks[3];
        for (int d = 0; d < 3; ++d) axis_factor(th[2 + d], th[5], b.lo[d], b.hi[d], K[d], Kc[d], Ks[d]);
        const index_t n = v.size();
        r.resize(n);
        if (J) J->resize(n, 6);
        index_t row = 0;
        const index_t nz = b.hi[0] - b.lo[0] + 1, ny = b.hi[1] - b.lo[1] + 1, nx = b.hi[2] - b.lo[2] + 1;
        for (index_t iz = 0; iz < nz; ++iz)
            for (index_t iy = 0; iy < ny; ++iy)
                for (index_t ix = 0; ix < nx; ++ix, ++row) {
                    double kz = K[0][iz], ky = K[1][iy], kx = K[2][ix];
                    double prod = kz * ky * kx;
                    r[row] = th[0] + th[1] * prod - v[row];
                    if (J) {
                        (*J)(row, 0) = 1.0;
                        (*J)(row, 1) = prod;
                        (*J)(row, 2) = th[1] * Kc[0][iz] * ky * kx;
                        (*J)(row, 3) = th[1] * kz * Kc[1][iy] * kx;
                        (*J)(row, 4) = th[1] * kz * ky * Kc[2][ix];
                        (*J)(row, 5) = th[1] * (Ks[0][iz] * ky * kx + kz * Ks[1][iy] * kx + kz * ky * Ks[2][ix]);
                    }
                }
        return r.squaredNorm();
    }
};

}  // namespace

// -------------------------------------------------------------------------------------------------

std::vector<Peak> find_local_maxima(const float* vol, Shape3 s, float threshold, int threads) {
    const int nt = resolve_threads(threads);
    std::vector<std::vector<Candidate>> per_z(static_cast<std::size_t>(std::max<index_t>(s.nz, 0)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (index_t z = 0; z < s.nz; ++z) {
        auto& out = per_z[std::size_t(z)];
        for (index_t y = 0; y < s.ny; ++y)
            for (index_t x = 0; x < s.nx; ++x) {
                const index_t i = (z * s.ny + y) * s.nx + x;
                const float v = vol[i];
                if (!(v > threshold)) continue;
                bool ok = true, tie = false;
                for (index_t dz = -1; dz <= 1 && ok; ++dz) {
                    index_t zz = z + dz;
                    if (zz < 0 || zz >= s.nz) continue;
                    for (index_t dy = -1; dy <= 1 && ok; ++dy) {
                        index_t yy = y + dy;
                        if (yy < 0 || yy >= s.ny) continue;
                        const float* row = vol + (zz * s.ny + yy) * s.nx;
                        for (index_t dx = -1; dx <= 1; ++dx) {
                            index_t xx = x + dx;
                            if (xx < 0 || xx >= s.nx || (dz | dy | dx) == 0) continue;
                            float w = row[xx];
                            if (w > v) {
                                ok = false;
                                break;
                            }
                            if (w == v) tie = true;
                        }
                    }
                }
                if (ok) out.push_back(Candidate{i, v, tie});
            }
    }
    std::vector<Peak> peaks;
    std::vector<index_t> ties;
    for (const auto& vz : per_z)
        for (const auto& c : vz) {
            if (c.tie) ties.push_back(c.index);
            else peaks.push_back(Peak{c.index, c.value});
        }
    if (!ties.empty()) {
        std::unordered_set<index_t> visited;
        for (index_t t : ties) {
            if (visited.count(t)) continue;
            Peak p;
            if (resolve_plateau(vol, s, t, visited, p)) peaks.push_back(p);
        }
    }
    std::sort(peaks.begin(), peaks.end(), [](const Peak& a, const Peak& b) {
        return a.value != b.value ? a.value > b.value : a.index < b.index;
    });
    return peaks;
}

FitResult fit_polynomial(const float* vol, Shape3 shape, index_t index, int radius, double max_drift,
                         int max_iterations) {
    return PolyFitter(radius, shape).fit(vol, shape, index, max_drift, max_iterations);
}

FitResult fit_gaussian(const float* vol, Shape3 s, index_t index, int radius, double max_drift,
                       const FitResult& start, int max_iterations) {
    const Box b = make_box(s, index, radius);
    FitResult res{double(b.z), double(b.y), double(b.x), fit_converged};
    const Eigen::VectorXd v = box_values(vol, s, b);
    if (v.size() < 12) {
        res.status = fit_not_converged;
        return res;
    }
    // Starting values: background = box minimum, width from the face neighbours.
    const double peak = vol[index];
    const double B0 = v.minCoeff();
    double nb = 0;
    int cnt = 0;
    const index_t c[3] = {b.z, b.y, b.x}, n[3] = {s.nz, s.ny, s.nx};
    for (int d = 0; d < 3; ++d)
        for (int sg = -1; sg <= 1; sg += 2) {
            index_t q[3] = {c[0], c[1], c[2]};
            q[d] += sg;
            if (q[d] < 0 || q[d] >= n[d]) continue;
            nb += vol[(q[0] * s.ny + q[1]) * s.nx + q[2]];
            ++cnt;
        }
    double ratio = cnt ? (nb / cnt - B0) / std::max(peak - B0, 1e-300) : 0.5;
    ratio = std::clamp(ratio, 0.05, 0.95);
    double s0 = std::sqrt(-1.0 / (2.0 * std::log(ratio)));
    Eigen::Matrix<double, 6, 1> th;
    th << B0, 0, 0, 0, 0, s0;
    if (start.status == fit_converged) th[2] = start.z - b.z, th[3] = start.y - b.y, th[4] = start.x - b.x;
    {  // amplitude so that the model matches the peak voxel
        std::vector<double> K[3], Kc[3], Ks[3];
        double prod = 1;
        for (int d = 0; d < 3; ++d) {
            axis_factor(th[2 + d], th[5], 0, 0, K[d], Kc[d], Ks[d]);
            prod *= K[d][0];
        }
        th[1] = (peak - B0) / std::max(prod, 1e-300);
    }
    GaussModel model{b, v};
    Eigen::VectorXd r, rt;
    Eigen::MatrixXd J;
    double cost = model.eval(th, r, &J);
    double lambda = -1;
    bool converged = false;
    for (int it = 0; it < 4 * max_iterations && !converged; ++it) {
        Eigen::Matrix<double, 6, 6> JtJ = J.transpose() * J;
        Eigen::Matrix<double, 6, 1> Jtr = J.transpose() * r;
        if (lambda < 0) lambda = 1e-3 * JtJ.diagonal().maxCoeff();
        bool accepted = false;
        while (!accepted) {
            Eigen::Matrix<double, 6, 6> Aug = JtJ;
            for (int k = 0; k < 6; ++k) Aug(k, k) += lambda * std::max(JtJ(k, k), 1e-300);
            Eigen::Matrix<double, 6, 1> d = Aug.ldlt().solve(-Jtr);
            Eigen::Matrix<double, 6, 1> tt = th + d;
            double ct = tt[5] > 0 && std::isfinite(d.sum()) ? model.eval(tt, rt, nullptr) : 1e300;
            if (ct <= cost) {
                double step = std::max(d.segment<3>(2).cwiseAbs().maxCoeff(), std::abs(d[5]));
                double dec = cost - ct;
                th = tt;
                cost = model.eval(th, r, &J);
                lambda = std::max(lambda / 3.0, 1e-12);
                accepted = true;
                if (step < 1e-8 || dec <= 1e-15 * cost) converged = true;
            } else {
                lambda *= 4.0;
                if (lambda > 1e12) {  // no descent direction left: at a minimum to working precision
                    converged = true;
                    break;
                }
            }
        }
    }
    Vec3 p(th[2], th[3], th[4]);
    if (!(th[1] > 0) || !(th[5] > 0)) res.status = fit_not_maximum;
    else if (!(p.norm() <= max_drift)) res.status = fit_drifted;
    else if (!converged) res.status = fit_not_converged;
    else res.z += p[0], res.y += p[1], res.x += p[2];
    return res;
}

void validate(const TraceOptions& o) {
    auto bad = [](const std::string& name, const std::string& what, double got) {
        throw std::invalid_argument(name + ": expected " + what + ", got " + std::to_string(got));
    };
    if (std::isinf(o.threshold)) bad("threshold", "a finite number (or NaN: automatic)", o.threshold);
    if (!(o.threshold_fraction >= 0 && o.threshold_fraction <= 1))
        bad("threshold_fraction", "a fraction in [0, 1]", o.threshold_fraction);
    if (o.max_atoms < 0) bad("max_atoms", "a count >= 0 (0: no cap)", double(o.max_atoms));
    if (!(o.pixel_size > 0) || !std::isfinite(o.pixel_size)) bad("pixel_size", "a positive number", o.pixel_size);
    if (!(o.min_distance >= 0) || !std::isfinite(o.min_distance)) bad("min_distance", "a finite value >= 0", o.min_distance);
    if (o.fit < 0 || o.fit > 2) bad("fit", "0 (none), 1 (polynomial) or 2 (gaussian)", o.fit);
    if (!(o.max_drift > 0) || !std::isfinite(o.max_drift)) bad("max_drift", "a positive number", o.max_drift);
    if (o.fit_radius < 1) bad("fit_radius", "a value >= 1", o.fit_radius);
    if (o.fit > 0 && o.fit_radius < 2) bad("fit_radius", "a value >= 2 for a 4th-order polynomial", o.fit_radius);
    if (o.max_iterations < 1) bad("max_iterations", "a value >= 1", o.max_iterations);
    resolve_threads(o.threads);
}

double resolve_threshold(const float* vol, Shape3 s, const TraceOptions& opt) {
    if (!std::isnan(opt.threshold)) return opt.threshold;
    float mx = -std::numeric_limits<float>::infinity();
    for (index_t i = 0; i < s.size(); ++i) mx = std::max(mx, vol[i]);
    return opt.threshold_fraction * double(mx);
}

TraceResult trace_atoms(const float* vol, Shape3 s, const TraceOptions& opt) {
    validate(opt);
    if (s.nz < 3 || s.ny < 3 || s.nx < 3)
        throw std::invalid_argument("volume: expected at least 3 voxels along every axis, got shape (" +
                                    std::to_string(s.nz) + ", " + std::to_string(s.ny) + ", " + std::to_string(s.nx) + ")");
    for (index_t i = 0; i < s.size(); ++i)
        if (!std::isfinite(vol[i]))
            throw std::invalid_argument("volume: expected finite values, got " + std::to_string(vol[i]) +
                                        " at flat index " + std::to_string(i));
    const int nt = resolve_threads(opt.threads);
    if (opt.fit > 0) {
        // The fit box (clipped to the volume): its design matrix, pseudo-inverse and thin SVD
        // (35 columns), and per thread a design matrix, its QR and the box values.
        const double side = 2.0 * opt.fit_radius + 1.0;
        const double rows = std::min<double>(side, double(s.nz)) * std::min<double>(side, double(s.ny)) *
                            std::min<double>(side, double(s.nx));
        check_memory(8.0 * rows * (35.0 * (3.0 + 2.0 * nt) + nt), "the atom fit boxes");
    }
    const float threshold = float(resolve_threshold(vol, s, opt));
    std::vector<Peak> peaks = find_local_maxima(vol, s, threshold, nt);
    const index_t n = index_t(peaks.size());
    std::vector<FitResult> fits(static_cast<std::size_t>(n));
    {
        PolyFitter poly(opt.fit_radius, s);
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
        for (index_t k = 0; k < n; ++k) {
            const index_t i = peaks[std::size_t(k)].index;
            FitResult f{double(i / (s.ny * s.nx)), double((i / s.nx) % s.ny), double(i % s.nx), fit_converged};
            if (opt.fit >= 1) f = poly.fit(vol, s, i, opt.max_drift, opt.max_iterations);
            if (opt.fit >= 2) f = fit_gaussian(vol, s, i, opt.fit_radius, opt.max_drift, f, opt.max_iterations);
            // A fit near the border may land beyond it (noisy edge voxels): such an atom keeps its
            // voxel maximum, which is inside, so trace never hands on an atom outside the volume.
            if (!(f.z >= -0.5 && f.z <= s.nz - 0.5 && f.y >= -0.5 && f.y <= s.ny - 0.5 && f.x >= -0.5 &&
                  f.x <= s.nx - 0.5))
                f = FitResult{double(i / (s.ny * s.nx)), double((i / s.nx) % s.ny), double(i % s.nx), fit_left_volume};
            fits[std::size_t(k)] = f;
        }
    }
    // Greedy minimum distance in brightness order on a cell grid of cell size min_distance.
    std::vector<index_t> keep;
    const double d = opt.min_distance / opt.pixel_size;  // voxels
    const index_t cap = opt.max_atoms > 0 ? opt.max_atoms : n;
    if (d > 0) {
        // Cells only narrow the search (every clash is decided on the exact distance), so a cell may
        // be larger than d: at least 1e-6 voxels, and cell indices are clamped to +-2^40, which keeps
        // the float-to-integer casts defined for any d and any fitted position. The key mixes the
        // indices in unsigned arithmetic (wrap-around is defined; a collision only adds candidates).
        std::unordered_map<std::uint64_t, std::vector<index_t>> cells;
        auto key = [](std::int64_t a, std::int64_t b, std::int64_t c) {
            return std::uint64_t(a) * 0x9E3779B97F4A7C15ull ^ std::uint64_t(b) * 0xC2B2AE3D27D4EB4Full ^
                   std::uint64_t(c);
        };
        const double cell = std::max(d, 1e-6);
        const index_t cmax = index_t(1) << 40;
        for (index_t k = 0; k < n && index_t(keep.size()) < cap; ++k) {
            const FitResult& f = fits[std::size_t(k)];
            const std::int64_t cz = clamp_floor(f.z / cell, -cmax, cmax), cy = clamp_floor(f.y / cell, -cmax, cmax),
                               cx = clamp_floor(f.x / cell, -cmax, cmax);
            bool clash = false;
            for (int a = -1; a <= 1 && !clash; ++a)
                for (int b2 = -1; b2 <= 1 && !clash; ++b2)
                    for (int c2 = -1; c2 <= 1 && !clash; ++c2) {
                        auto it = cells.find(key(cz + a, cy + b2, cx + c2));
                        if (it == cells.end()) continue;
                        for (index_t j : it->second) {
                            const FitResult& g = fits[std::size_t(j)];
                            double dz = f.z - g.z, dy = f.y - g.y, dx = f.x - g.x;
                            if (dz * dz + dy * dy + dx * dx < d * d) {
                                clash = true;
                                break;
                            }
                        }
                    }
            if (clash) continue;
            cells[key(cz, cy, cx)].push_back(k);
            keep.push_back(k);
        }
    } else {
        for (index_t k = 0; k < std::min(n, cap); ++k) keep.push_back(k);
    }
    TraceResult out;
    const std::size_t m = keep.size();
    out.voxel.resize(3 * m);
    out.position.resize(3 * m);
    out.intensity.resize(m);
    out.status.resize(m);
    for (std::size_t q = 0; q < m; ++q) {
        const Peak& p = peaks[std::size_t(keep[q])];
        const FitResult& f = fits[std::size_t(keep[q])];
        out.voxel[3 * q] = p.index / (s.ny * s.nx);
        out.voxel[3 * q + 1] = (p.index / s.nx) % s.ny;
        out.voxel[3 * q + 2] = p.index % s.nx;
        out.position[3 * q] = f.z;
        out.position[3 * q + 1] = f.y;
        out.position[3 * q + 2] = f.x;
        out.intensity[q] = p.value;
        out.status[q] = f.status;
    }
    return out;
}

}  // namespace aet
