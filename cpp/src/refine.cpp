#include <aetcore/refine.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <Eigen/Dense>
#include <aetcore/bounded_lbfgs.hpp>
#include <aetcore/memory.hpp>

namespace aet {

void gaussian_cell_mean_derivs(double c, double s, index_t i0, index_t n, double* d_c, double* d_s) {
    // The Gaussian at the n + 1 cell edges t_j = i0 + j - 0.5 - c, by the recurrence
    // p_{j+1} = p_j q_j, q_{j+1} = q_j exp(2h) (h = -1/(2 s^2)), run outward from the edge nearest the
    // centre so that every factor is <= 1 and an underflow stays an underflow: 4 exp instead of n + 1.
    const double norm = 1.0 / (std::sqrt(2.0 * M_PI) * s);
    const double h = -0.5 / (s * s);
    constexpr index_t kStack = 64;
    double stack[kStack + 1];
    std::vector<double> heap;
    double* p = stack;
    if (n + 1 > kStack + 1) {
        heap.resize(std::size_t(n + 1));
        p = heap.data();
    }
    const double t0 = double(i0) - 0.5 - c;
    const index_t jc = std::min<index_t>(n, std::max<index_t>(0, index_t(std::llround(-t0))));
    const double tc = t0 + double(jc);
    const double ratio = std::exp(2.0 * h);
    p[jc] = norm * std::exp(h * tc * tc);
    double q = std::exp(h * (2.0 * tc + 1.0));  // p_{j+1} / p_j going right
    for (index_t j = jc; j < n; ++j) {
        p[j + 1] = p[j] * q;
        q *= ratio;
    }
    q = std::exp(h * (1.0 - 2.0 * tc));  // p_{j-1} / p_j going left
    for (index_t j = jc; j > 0; --j) {
        p[j - 1] = p[j] * q;
        q *= ratio;
    }
    for (index_t j = 0; j < n; ++j) {
        const double tp = t0 + double(j), tn = tp + 1.0;
        d_c[j] = p[j] - p[j + 1];
        d_s[j] = (tp * p[j] - tn * p[j + 1]) / s;
    }
}

namespace {

struct Window {
    double u, v, amp, sig;
    index_t u0, u1, v0, v1;
    bool empty;
};

inline Window atom_window(const AtomSet& atoms, index_t a, const Mat3& Rt, index_t ndy, index_t ndx) {
    static const double two_pi_32 = std::pow(2.0 * M_PI, 1.5);
    Window w;
    const double* r = atoms.positions + 3 * a;
    const int s = atoms.species[a];
    w.sig = atoms.sigmas[s];
    w.amp = atoms.heights[s] * two_pi_32 * w.sig * w.sig * w.sig;
    w.u = Rt(0, 0) * r[0] + Rt(0, 1) * r[1] + Rt(0, 2) * r[2] + double(ndx / 2);
    w.v = Rt(1, 0) * r[0] + Rt(1, 1) * r[1] + Rt(1, 2) * r[2] + double(ndy / 2);
    const double ext = atoms.cutoff * w.sig;
    w.u0 = clamp_floor(w.u - ext, 0, ndx);
    w.u1 = clamp_ceil(w.u + ext, -1, ndx - 1);
    w.v0 = clamp_floor(w.v - ext, 0, ndy);
    w.v1 = clamp_ceil(w.v + ext, -1, ndy - 1);
    w.empty = w.u0 > w.u1 || w.v0 > w.v1;
    return w;
}

}  // namespace

void validate(const RefineOptions& o) {
    auto bad = [](const std::string& name, const std::string& what, double got) {
        throw std::invalid_argument(name + ": expected " + what + ", got " + std::to_string(got));
    };
    if (!(o.max_shift > 0) || !std::isfinite(o.max_shift)) bad("max_shift", "a positive number", o.max_shift);
    if (o.iterations < 1) bad("iterations", "a value >= 1", o.iterations);
    if (!(o.cutoff > 0) || !std::isfinite(o.cutoff)) bad("cutoff", "a positive number", o.cutoff);
    if (o.precision != "sandwich" && o.precision != "curvature")
        throw std::invalid_argument("precision: expected one of ('sandwich', 'curvature'), got '" + o.precision + "'");
    if (!(o.angle_range > 0) || !std::isfinite(o.angle_range)) bad("angle_range", "a positive number", o.angle_range);
    if (o.angle_rounds < 1) bad("angle_rounds", "a value >= 1", o.angle_rounds);
    if (!(o.b_min > 0 && o.b_max > o.b_min) || !std::isfinite(o.b_max)) bad("b_min/b_max", "0 < b_min < b_max", o.b_min);
    if (!(o.height_min > 0)) bad("height_min", "a positive number", o.height_min);
    if (o.lbfgs_memory < 1) bad("lbfgs_memory", "a value >= 1", o.lbfgs_memory);
    if (!(o.lbfgs_ftol >= 0) || !(o.lbfgs_gtol >= 0)) bad("lbfgs_ftol/lbfgs_gtol", "values >= 0", o.lbfgs_ftol);
    resolve_threads(o.threads);
}

double sigma_from_b(double b, double blur, double pixel_size) {
    if (!std::isfinite(b) || b < 0) throw std::invalid_argument("b_factors: expected finite values >= 0, got " + std::to_string(b));
    if (!std::isfinite(blur) || blur < 0) throw std::invalid_argument("blur: expected a finite number >= 0, got " + std::to_string(blur));
    if (!(pixel_size > 0) || !std::isfinite(pixel_size))
        throw std::invalid_argument("pixel_size: expected a positive number, got " + std::to_string(pixel_size));
    const double s2 = b / (8.0 * M_PI * M_PI * pixel_size * pixel_size) + (blur / pixel_size) * (blur / pixel_size);
    if (!(s2 > 0) || !std::isfinite(s2))
        throw std::invalid_argument("b_factors/blur: every atom needs a positive finite width");
    return std::sqrt(s2);
}

RefineEval refine_objective(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                            index_t ndx, const float* measured, double scale, double pixel_size,
                            bool want_grad, bool want_jtj, int threads) {
    validate_atoms(atoms);
    if (ndy < 1 || ndx < 1)
        throw std::invalid_argument("tilts: expected non-empty images, got " + std::to_string(ndy) + " x " +
                                    std::to_string(ndx));
    if (!std::isfinite(scale)) throw std::invalid_argument("scale: expected a finite number");
    if (!(pixel_size > 0) || !std::isfinite(pixel_size))
        throw std::invalid_argument("pixel_size: expected a positive number, got " + std::to_string(pixel_size));
    const index_t K = index_t(rotations.size());
    const index_t npix = ndy * ndx;
    const index_t n = atoms.n;
    const index_t ns = index_t(atoms.heights.size());
    const int nt = resolve_threads(threads);
    check_memory(8.0 * double(K) * double(ndy) * double(ndx) +
                     8.0 * nt * (double(want_grad) * (3.0 * n + 2.0 * ns) + double(want_jtj) * (18.0 * n + 2.0 * ns * double(npix))) +
                     8.0 * (9.0 * n + 4.0 * ns),
                 "the refinement objective");
    for (index_t i = 0; i < K * npix; ++i)
        if (!std::isfinite(measured[i]))
            throw std::invalid_argument("tilts: expected finite values, got " + std::to_string(measured[i]) +
                                        " at flat index " + std::to_string(i));
    std::vector<double> model(std::size_t(K * npix), 0.0);
    std::vector<double> pb_k(std::size_t(K), 0.0), pp_k(std::size_t(K), 0.0);

    // Pass 1: the model images (each angle owns its image) and <P, b>, <P, P> per angle.
#pragma omp parallel num_threads(nt)
    {
        std::vector<double> gx, gy;
#pragma omp for schedule(static)
        for (index_t k = 0; k < K; ++k) {
            double* img = model.data() + k * npix;
            const Mat3 Rt = rotations[std::size_t(k)].transpose();
            for (index_t a = 0; a < n; ++a) {
                const Window w = atom_window(atoms, a, Rt, ndy, ndx);
                if (w.empty) continue;
                gx.resize(std::size_t(w.u1 - w.u0 + 1));
                gy.resize(std::size_t(w.v1 - w.v0 + 1));
                gaussian_cell_means(w.u, w.sig, w.u0, w.u1 - w.u0 + 1, gx.data());
                gaussian_cell_means(w.v, w.sig, w.v0, w.v1 - w.v0 + 1, gy.data());
                for (index_t iv = w.v0; iv <= w.v1; ++iv) {
                    const double wy = w.amp * gy[std::size_t(iv - w.v0)];
                    double* row = img + iv * ndx;
                    for (index_t iu = w.u0; iu <= w.u1; ++iu) row[iu] += wy * gx[std::size_t(iu - w.u0)];
                }
            }
            const float* b = measured + k * npix;
            double spb = 0.0, spp = 0.0;
#pragma omp simd reduction(+ : spb, spp)
            for (index_t i = 0; i < npix; ++i) {
                spb += img[i] * double(b[i]);
                spp += img[i] * img[i];
            }
            pb_k[std::size_t(k)] = spb;
            pp_k[std::size_t(k)] = spp;
        }
    }
    RefineEval out;
    for (index_t k = 0; k < K; ++k) {
        out.pb += pb_k[std::size_t(k)];
        out.pp += pp_k[std::size_t(k)];
    }
    const double s = scale > 0 ? scale : (out.pp > 0 ? out.pb / out.pp : 0.0);
    out.scale = s;

    // Pass 2: residuals, loss, gradients and Gauss-Newton blocks.
    std::vector<double> loss_k(std::size_t(K), 0.0), abs_k(std::size_t(K), 0.0);
    const std::size_t ng = want_grad ? std::size_t(3 * n + 2 * ns) : 0;
    const std::size_t nj = want_jtj ? std::size_t(6 * n) : 0;
    std::vector<std::vector<double>> acc_g(static_cast<std::size_t>(nt)), acc_j(static_cast<std::size_t>(nt)),
        acc_m(static_cast<std::size_t>(nt)), acc_h(static_cast<std::size_t>(nt)), acc_gn(static_cast<std::size_t>(nt));
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num();
        // with want_jtj: per species, the image dP/dH_s and dP/dsigma_s of the current angle, whose
        // squared sums are the Gauss-Newton diagonal of the species' height and width
        std::vector<double>& gn = acc_gn[std::size_t(tid)];
        std::vector<double> dh_img, ds_img;
        if (want_jtj) {
            gn.assign(std::size_t(2 * ns), 0.0);
            dh_img.resize(std::size_t(ns * npix));
            ds_img.resize(std::size_t(ns * npix));
        }
        std::vector<double>& g = acc_g[std::size_t(tid)];
        std::vector<double>& jt = acc_j[std::size_t(tid)];
        std::vector<double>& meat = acc_m[std::size_t(tid)];
        std::vector<double>& hres = acc_h[std::size_t(tid)];
        g.assign(ng, 0.0);
        jt.assign(nj, 0.0);
        meat.assign(nj, 0.0);
        hres.assign(nj, 0.0);
        std::vector<double> ex, ey, dxu, dyv, dxs, dys;
#pragma omp for schedule(static)
        for (index_t k = 0; k < K; ++k) {
            double* res = model.data() + k * npix;  // becomes s P - b in place
            const float* b = measured + k * npix;
            double l = 0.0, ab = 0.0;
#pragma omp simd reduction(+ : l, ab)
            for (index_t i = 0; i < npix; ++i) {
                const double r = s * res[i] - double(b[i]);
                res[i] = r;
                l += r * r;
                ab += std::abs(r);
            }
            loss_k[std::size_t(k)] = 0.5 * l;
            abs_k[std::size_t(k)] = ab;
            if (!want_grad && !want_jtj) continue;
            if (want_jtj) {
                std::fill(dh_img.begin(), dh_img.end(), 0.0);
                std::fill(ds_img.begin(), ds_img.end(), 0.0);
            }
            const Mat3 Rt = rotations[std::size_t(k)].transpose();
            for (index_t a = 0; a < n; ++a) {
                const Window w = atom_window(atoms, a, Rt, ndy, ndx);
                if (w.empty) continue;
                const index_t mu = w.u1 - w.u0 + 1, mv = w.v1 - w.v0 + 1;
                ex.resize(std::size_t(mu)); dxu.resize(std::size_t(mu)); dxs.resize(std::size_t(mu));
                ey.resize(std::size_t(mv)); dyv.resize(std::size_t(mv)); dys.resize(std::size_t(mv));
                gaussian_cell_means(w.u, w.sig, w.u0, mu, ex.data());
                gaussian_cell_means(w.v, w.sig, w.v0, mv, ey.data());
                gaussian_cell_mean_derivs(w.u, w.sig, w.u0, mu, dxu.data(), dxs.data());
                gaussian_cell_mean_derivs(w.v, w.sig, w.v0, mv, dyv.data(), dys.data());
                if (want_grad) {
                    double S0 = 0, Su = 0, Sv = 0, Ss = 0;
                    for (index_t j = 0; j < mv; ++j) {
                        const double* row = res + (w.v0 + j) * ndx + w.u0;
                        double r0 = 0, ru = 0, rs = 0;
#pragma omp simd reduction(+ : r0, ru, rs)
                        for (index_t i = 0; i < mu; ++i) {
                            r0 += row[i] * ex[std::size_t(i)];
                            ru += row[i] * dxu[std::size_t(i)];
                            rs += row[i] * dxs[std::size_t(i)];
                        }
                        const double eyj = ey[std::size_t(j)];
                        S0 += eyj * r0;
                        Su += eyj * ru;
                        Sv += dyv[std::size_t(j)] * r0;
                        Ss += eyj * rs + dys[std::size_t(j)] * r0;
                    }
                    const double gu = s * w.amp * Su, gv = s * w.amp * Sv;
                    double* gp = g.data() + 3 * a;
                    for (int c = 0; c < 3; ++c) gp[c] += gu * Rt(0, c) + gv * Rt(1, c);
                    const int sp = atoms.species[a];
                    g[std::size_t(3 * n + sp)] += s * w.amp / atoms.heights[std::size_t(sp)] * S0;
                    g[std::size_t(3 * n + ns + sp)] += s * (3.0 * w.amp / w.sig * S0 + w.amp * Ss);
                }
                if (want_jtj) {
                    double exx = 0, exd = 0, edd = 0, eyy = 0, eyd = 0, fdd = 0;
                    for (index_t i = 0; i < mu; ++i) {
                        exx += ex[std::size_t(i)] * ex[std::size_t(i)];
                        exd += ex[std::size_t(i)] * dxu[std::size_t(i)];
                        edd += dxu[std::size_t(i)] * dxu[std::size_t(i)];
                    }
                    for (index_t j = 0; j < mv; ++j) {
                        eyy += ey[std::size_t(j)] * ey[std::size_t(j)];
                        eyd += ey[std::size_t(j)] * dyv[std::size_t(j)];
                        fdd += dyv[std::size_t(j)] * dyv[std::size_t(j)];
                    }
                    {   // this atom's dP/dH (= P / H) and dP/dsigma into its species' images
                        const int sp = atoms.species[a];
                        const double ah = w.amp / atoms.heights[std::size_t(sp)], as = 3.0 * w.amp / w.sig;
                        double* ih = dh_img.data() + std::size_t(sp) * std::size_t(npix);
                        double* is = ds_img.data() + std::size_t(sp) * std::size_t(npix);
                        for (index_t j = 0; j < mv; ++j) {
                            const index_t off = (w.v0 + j) * ndx + w.u0;
                            const double eyj = ey[std::size_t(j)], dsj = dys[std::size_t(j)];
                            for (index_t i = 0; i < mu; ++i) {
                                const double e = ex[std::size_t(i)] * eyj;
                                ih[off + i] += ah * e;
                                is[off + i] += as * e + w.amp * (dxs[std::size_t(i)] * eyj + ex[std::size_t(i)] * dsj);
                            }
                        }
                    }
                    const double A2 = w.amp * w.amp;
                    const double muu = A2 * edd * eyy, muv = A2 * exd * eyd, mvv = A2 * exx * fdd;
                    double* J = jt.data() + 6 * a;
                    const int ii[6] = {0, 0, 0, 1, 1, 2}, jj[6] = {0, 1, 2, 1, 2, 2};
                    // the same with r^2 per pixel: not separable, one pass over the window; in the same
                    // pass sum r d2(s P)/d(u, v)^2, with d2E/dc2 = dE/ds / sigma (gaussian_cell_mean_derivs)
                    double ruu = 0, ruv = 0, rvv = 0, huu = 0, huv = 0, hvv = 0;
                    for (index_t j = 0; j < mv; ++j) {
                        const double* row = res + (w.v0 + j) * ndx + w.u0;
                        const double eyj = ey[std::size_t(j)], dyj = dyv[std::size_t(j)];
                        double h0 = 0, h1 = 0, h2 = 0;
#pragma omp simd reduction(+ : h0, h1, h2, ruu, ruv, rvv)
                        for (index_t i = 0; i < mu; ++i) {
                            const double r2 = row[i] * row[i];
                            const double gu = dxu[std::size_t(i)] * eyj, gv = ex[std::size_t(i)] * dyj;
                            ruu += r2 * gu * gu;
                            ruv += r2 * gu * gv;
                            rvv += r2 * gv * gv;
                            h0 += row[i] * dxs[std::size_t(i)];
                            h1 += row[i] * dxu[std::size_t(i)];
                            h2 += row[i] * ex[std::size_t(i)];
                        }
                        huu += eyj * h0;
                        huv += dyj * h1;
                        hvv += dys[std::size_t(j)] * h2;
                    }
                    ruu *= A2, ruv *= A2, rvv *= A2;
                    huu *= s * w.amp / w.sig, huv *= s * w.amp, hvv *= s * w.amp / w.sig;
                    double* M = meat.data() + 6 * a;
                    double* H = hres.data() + 6 * a;
                    for (int q = 0; q < 6; ++q) {
                        const double a0 = Rt(0, ii[q]), a1 = Rt(1, ii[q]);
                        const double b0 = Rt(0, jj[q]), b1 = Rt(1, jj[q]);
                        J[q] += a0 * muu * b0 + a0 * muv * b1 + a1 * muv * b0 + a1 * mvv * b1;
                        M[q] += a0 * ruu * b0 + a0 * ruv * b1 + a1 * ruv * b0 + a1 * rvv * b1;
                        H[q] += a0 * huu * b0 + a0 * huv * b1 + a1 * huv * b0 + a1 * hvv * b1;
                    }
                }
            }
            if (want_jtj)
                for (index_t q = 0; q < ns; ++q) {
                    const double* ih = dh_img.data() + std::size_t(q) * std::size_t(npix);
                    const double* is = ds_img.data() + std::size_t(q) * std::size_t(npix);
                    double sh = 0.0, ss = 0.0;
#pragma omp simd reduction(+ : sh, ss)
                    for (index_t i = 0; i < npix; ++i) {
                        sh += ih[i] * ih[i];
                        ss += is[i] * is[i];
                    }
                    gn[std::size_t(q)] += sh;
                    gn[std::size_t(ns + q)] += ss;
                }
        }
    }
    for (index_t k = 0; k < K; ++k) {
        out.loss += loss_k[std::size_t(k)];
        out.abs_residual += abs_k[std::size_t(k)];
    }
    if (want_grad) {
        std::vector<double> g(ng, 0.0);
        for (int t = 0; t < nt; ++t)
            if (acc_g[std::size_t(t)].size() == ng)
                for (std::size_t i = 0; i < ng; ++i) g[i] += acc_g[std::size_t(t)][i];
        out.grad_pos.assign(g.begin(), g.begin() + 3 * n);
        out.grad_height.assign(g.begin() + 3 * n, g.begin() + 3 * n + ns);
        out.grad_sigma.assign(g.begin() + 3 * n + ns, g.end());
        out.grad_b.resize(std::size_t(ns));
        const double c = 1.0 / (16.0 * M_PI * M_PI * pixel_size * pixel_size);
        for (index_t q = 0; q < ns; ++q)
            out.grad_b[std::size_t(q)] = out.grad_sigma[std::size_t(q)] * c / atoms.sigmas[std::size_t(q)];
    }
    if (want_jtj) {
        out.gn_height.assign(std::size_t(ns), 0.0);
        out.gn_sigma.assign(std::size_t(ns), 0.0);
        for (int t = 0; t < nt; ++t)
            if (acc_gn[std::size_t(t)].size() == std::size_t(2 * ns))
                for (index_t q = 0; q < ns; ++q) {
                    out.gn_height[std::size_t(q)] += acc_gn[std::size_t(t)][std::size_t(q)];
                    out.gn_sigma[std::size_t(q)] += acc_gn[std::size_t(t)][std::size_t(ns + q)];
                }
        out.jtj.assign(nj, 0.0);
        out.jtrrj.assign(nj, 0.0);
        out.rhess.assign(nj, 0.0);
        for (int t = 0; t < nt; ++t)
            if (acc_j[std::size_t(t)].size() == nj)
                for (std::size_t i = 0; i < nj; ++i) {
                    out.jtj[i] += acc_j[std::size_t(t)][i];
                    out.jtrrj[i] += acc_m[std::size_t(t)][i];
                    out.rhess[i] += acc_h[std::size_t(t)][i];
                }
    }
    return out;
}

RefineResult refine_atoms(const double* positions, const std::int32_t* species, index_t n,
                          const std::vector<double>& heights, const std::vector<double>& b_factors, double blur,
                          const std::vector<Mat3>& rotations, index_t ndy, index_t ndx, const float* measured,
                          double pixel_size, double scale, const RefineOptions& opt, const RefineProgress& progress) {
    validate(opt);
    if (n < 0) throw std::invalid_argument("positions: expected n >= 0 atoms, got " + std::to_string(n));
    if (n > 0 && (positions == nullptr || species == nullptr))
        throw std::invalid_argument(positions == nullptr ? "positions: expected data for " + std::to_string(n) + " atoms"
                                                         : "species: expected data for " + std::to_string(n) + " atoms");
    const index_t ns = index_t(heights.size());
    if (ns < 1) throw std::invalid_argument("heights: expected at least one species");
    for (index_t q = 0; q < ns; ++q)
        if (!(heights[std::size_t(q)] > 0) || !std::isfinite(heights[std::size_t(q)]))
            throw std::invalid_argument("heights: expected positive finite values to refine, got " +
                                        std::to_string(heights[std::size_t(q)]) + " for species " + std::to_string(q));
    if (index_t(b_factors.size()) != ns)
        throw std::invalid_argument("b_factors: expected one per species (" + std::to_string(ns) + "), got " +
                                    std::to_string(b_factors.size()));
    for (double b : b_factors)
        if (!std::isfinite(b)) throw std::invalid_argument("b_factors: expected finite values, got " + std::to_string(b));
    if (!std::isfinite(blur) || blur < 0)
        throw std::invalid_argument("blur: expected a finite number >= 0, got " + std::to_string(blur));
    if (!(pixel_size > 0) || !std::isfinite(pixel_size))
        throw std::invalid_argument("pixel_size: expected a positive number, got " + std::to_string(pixel_size));
    if (!(scale >= 0) || !std::isfinite(scale))
        throw std::invalid_argument("scale: expected 0 (closed form) or a positive number, got " + std::to_string(scale));
    if (rotations.empty()) throw std::invalid_argument("rotations: expected at least one image");
    if (ndy < 1 || ndx < 1)
        throw std::invalid_argument("tilts: expected non-empty images, got " + std::to_string(ndy) + " x " +
                                    std::to_string(ndx));
    if (measured == nullptr) throw std::invalid_argument("tilts: expected data");
    const double npix = double(rotations.size()) * double(ndy) * double(ndx);
    check_memory(8.0 * (2.0 + 2.0 * opt.lbfgs_memory) * (3.0 * double(n) + 2.0 * double(ns)) + 8.0 * 12.0 * double(n),
                 "the refinement");
    double bsum = 0.0, norm = 0.0;
    const std::size_t N = std::size_t(rotations.size()) * std::size_t(ndy) * std::size_t(ndx);
    for (std::size_t i = 0; i < N; ++i) {
        const double v = measured[i];
        if (!std::isfinite(v))
            throw std::invalid_argument("tilts: expected finite values, got " + std::to_string(v) + " at flat index " +
                                        std::to_string(i));
        bsum += std::abs(v);
        norm += v * v;
    }
    norm *= 0.5;
    if (!(norm > 0)) throw std::invalid_argument("tilts: expected a non-zero tilt series");

    const bool rp = opt.refine_positions, rh = opt.refine_heights, rb = opt.refine_b;
    const std::vector<double> pos0(positions, positions + 3 * n);
    const std::vector<double> h0 = heights;
    std::vector<double> b0(b_factors);
    for (double& b : b0) b = std::min(std::max(b, opt.b_min), opt.b_max);
    for (double b : b0) sigma_from_b(b, blur, pixel_size);  // checks blur and B together

    // x = [position offsets, Å (3n)] [H / H_0 (ns)] [B, Å^2 (ns)], each block only when refined
    const std::size_t np = rp ? std::size_t(3 * n) : 0, nh = rh ? std::size_t(ns) : 0, nb = rb ? std::size_t(ns) : 0;
    std::vector<double> x0(np + nh + nb), lower(x0.size()), upper(x0.size());
    for (std::size_t i = 0; i < np; ++i) {
        x0[i] = 0.0;
        lower[i] = -opt.max_shift;
        upper[i] = opt.max_shift;
    }
    for (std::size_t q = 0; q < nh; ++q) {
        x0[np + q] = 1.0;
        lower[np + q] = opt.height_min;
        upper[np + q] = HUGE_VAL;
    }
    for (std::size_t q = 0; q < nb; ++q) {
        x0[np + nh + q] = b0[q];
        lower[np + nh + q] = opt.b_min;
        upper[np + nh + q] = opt.b_max;
    }

    // the model of a parameter vector: positions in voxels, heights, sigmas
    std::vector<double> pos_vox(pos0.size()), h(h0), b(b0);
    AtomSet atoms;
    atoms.species = species;
    atoms.n = n;
    atoms.cutoff = opt.cutoff;
    auto unpack = [&](const std::vector<double>& x) {
        for (std::size_t i = 0; i < pos0.size(); ++i) pos_vox[i] = (pos0[i] + (rp ? x[i] : 0.0)) / pixel_size;
        for (std::size_t q = 0; q < std::size_t(ns); ++q) {
            h[q] = rh ? h0[q] * x[np + q] : h0[q];
            b[q] = rb ? x[np + nh + q] : b0[q];
        }
        atoms.positions = pos_vox.data();
        atoms.heights = h;
        atoms.sigmas.resize(std::size_t(ns));
        for (std::size_t q = 0; q < std::size_t(ns); ++q) atoms.sigmas[q] = sigma_from_b(b[q], blur, pixel_size);
    };
    auto evaluate = [&](const std::vector<double>& x, bool grad, bool jtj) {
        unpack(x);
        return refine_objective(atoms, rotations, ndy, ndx, measured, scale, pixel_size, grad, jtj, opt.threads);
    };

    RefineResult out;
    const RefineEval start = evaluate(x0, false, false);
    out.loss_history.push_back(start.loss);
    out.r1_before = start.abs_residual / bsum;
    std::vector<double> x = x0;
    if (x0.empty()) {
        out.message = "nothing to refine";
    } else {
        // the L-BFGS works on y = d x: d = 1, or for the position offsets the square root of their
        // Gauss-Newton curvature at the start, s^2 diag(J^T J) / (pixel_size^2 norm) (floored at 1e-6 of
        // the median, so that an atom the images barely see does not take huge steps)
        std::vector<double> d(x0.size(), 1.0);
        if (opt.precondition && np > 0) {
            const RefineEval e0 = evaluate(x0, false, true);
            const double c = e0.scale * e0.scale / (pixel_size * pixel_size * norm);
            const int diag[3] = {0, 3, 5};
            std::vector<double> curv(np);
            for (std::size_t i = 0; i < np; ++i) curv[i] = c * e0.jtj[6 * (i / 3) + std::size_t(diag[i % 3])];
            std::vector<double> sorted(curv);
            std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(np / 2), sorted.end());
            const double floor = std::max(1e-6 * sorted[np / 2], 1e-300);
            for (std::size_t i = 0; i < np; ++i) d[i] = std::sqrt(std::max(curv[i], floor));
            if (!(sorted[np / 2] > 0) || !std::isfinite(sorted[np / 2])) std::fill(d.begin(), d.begin() + std::ptrdiff_t(np), 1.0);
            // the heights (relative, x = H / H_0: dP/dx = H_0 dP/dH) and the B-factors (dsigma/dB =
            // 1 / (16 pi^2 p^2 sigma)) on the same scale, from their Gauss-Newton diagonals
            const double cb = 1.0 / (16.0 * M_PI * M_PI * pixel_size * pixel_size);
            for (std::size_t q = 0; q < nh; ++q) {
                const double v = c * pixel_size * pixel_size * e0.gn_height[q] * h0[q] * h0[q];
                if (v > 0 && std::isfinite(v)) d[np + q] = std::sqrt(v);
            }
            for (std::size_t q = 0; q < nb; ++q) {
                const double dsdb = cb / atoms.sigmas[q];
                const double v = c * pixel_size * pixel_size * e0.gn_sigma[q] * dsdb * dsdb;
                if (v > 0 && std::isfinite(v)) d[np + nh + q] = std::sqrt(v);
            }
        }
        std::vector<double> y0(x0.size()), ylo(x0.size()), yhi(x0.size()), xv(x0.size());
        for (std::size_t i = 0; i < x0.size(); ++i) {
            y0[i] = x0[i] * d[i];
            ylo[i] = lower[i] * d[i];
            yhi[i] = upper[i] * d[i];
        }
        const BoundedObjective fun = [&](const std::vector<double>& yv, std::vector<double>& g) {
            for (std::size_t i = 0; i < yv.size(); ++i) xv[i] = yv[i] / d[i];
            const RefineEval e = evaluate(xv, true, false);
            for (std::size_t i = 0; i < np; ++i) g[i] = e.grad_pos[i] / pixel_size / norm / d[i];
            for (std::size_t q = 0; q < nh; ++q) g[np + q] = e.grad_height[q] * h0[q] / norm / d[np + q];
            for (std::size_t q = 0; q < nb; ++q) g[np + nh + q] = e.grad_b[q] / norm / d[np + nh + q];
            return e.loss / norm;
        };
        const BoundedIterationCallback cb = [&](int it, const std::vector<double>&, double f) {
            out.loss_history.push_back(f * norm);
            return !progress || progress(it, f * norm);
        };
        BoundedLbfgsOptions lo;
        lo.max_iterations = opt.iterations;
        lo.memory = opt.lbfgs_memory;
        lo.ftol = opt.lbfgs_ftol;
        lo.gtol = opt.lbfgs_gtol;
        const BoundedLbfgsResult r = minimize_bounded_lbfgs(fun, y0, ylo, yhi, lo, cb);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::min(std::max(r.x[i] / d[i], lower[i]), upper[i]);
        out.iterations = r.iterations;
        out.evaluations = r.evaluations;
        out.message = r.message;
        out.cancelled = r.cancelled;
    }

    // the final model, its scale, noise and per-atom precision
    const RefineEval fin = evaluate(x, false, true);
    const double s = fin.scale;
    out.positions.resize(pos0.size());
    for (std::size_t i = 0; i < pos0.size(); ++i) out.positions[i] = pos_vox[i] * pixel_size;
    for (std::size_t i = 0; i < np; ++i) out.positions[i] = pos0[i] + x[i];  // exactly start + offset
    out.heights = h;
    out.b_factors = b;
    if (rh && scale == 0.0) {
        for (double& hq : out.heights) hq *= s;
        out.scale = 1.0;
    } else {
        out.scale = s;
    }
    out.r1_after = fin.abs_residual / bsum;
    const double n_params = double(np + nh + nb) + (scale == 0.0 ? 1.0 : 0.0);
    const double dof = std::max(1.0, npix - n_params);
    const double noise_var = 2.0 * fin.loss / dof;
    out.noise_sigma = std::sqrt(noise_var);
    const double c = (s / pixel_size) * (s / pixel_size);  // J of s P per Å from P per voxel
    const double ch = 1.0 / (pixel_size * pixel_size);      // sum r d2(s P)/dr2 per Å^2 from per voxel^2
    const int ii[6] = {0, 0, 0, 1, 1, 2}, jj[6] = {0, 1, 2, 1, 2, 2};
    double amax = 1.0;
    for (double v : fin.jtj) amax = std::max(amax, std::abs(v * c));
    const bool sandwich = opt.precision == "sandwich";
    out.precision.assign(std::size_t(3 * n), std::numeric_limits<double>::infinity());
    out.curvature_ratio.assign(std::size_t(n), std::numeric_limits<double>::quiet_NaN());
    out.precision_reliable.assign(std::size_t(n), 0);
    for (index_t a = 0; a < n; ++a) {
        Eigen::Matrix3d A, M, Hr;
        for (int q = 0; q < 6; ++q) {
            A(ii[q], jj[q]) = A(jj[q], ii[q]) = fin.jtj[std::size_t(6 * a + q)] * c;
            M(ii[q], jj[q]) = M(jj[q], ii[q]) = fin.jtrrj[std::size_t(6 * a + q)] * c * (npix / dof);  // HC1
            Hr(ii[q], jj[q]) = Hr(jj[q], ii[q]) = fin.rhess[std::size_t(6 * a + q)] * ch;
        }
        if (!(A.determinant() > 1e-300 * amax * amax * amax)) continue;
        const Eigen::LLT<Eigen::Matrix3d> llt(A);
        if (llt.info() != Eigen::Success) continue;
        // the observed (Newton) block A + Hr in the frame where A is the identity: its eigenvalues are
        // 1 where the objective is quadratic around the atom, the Gauss-Newton assumption
        const Eigen::Matrix3d L = llt.matrixL();
        const Eigen::Matrix3d Li = L.inverse();
        const Eigen::Matrix3d Wm = Li * (A + Hr) * Li.transpose();
        const Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> es(0.5 * (Wm + Wm.transpose()));
        const Eigen::Vector3d lam = es.eigenvalues();
        out.curvature_ratio[std::size_t(a)] = lam.minCoeff();
        out.precision_reliable[std::size_t(a)] = lam.minCoeff() >= kPrecisionReliableCurvature ? 1 : 0;
        Eigen::Matrix3d Ai;
        if (sandwich) {  // bread: the observed block, its curvature relative to A floored
            const Eigen::Vector3d lc = lam.cwiseMax(kPrecisionCurvatureFloor);
            const Eigen::Matrix3d B = L * es.eigenvectors() * lc.asDiagonal() * es.eigenvectors().transpose() *
                                      L.transpose();
            Ai = B.inverse();
        } else {
            Ai = A.inverse();
        }
        const Eigen::Matrix3d cov = sandwich ? Eigen::Matrix3d(Ai * M * Ai) : Eigen::Matrix3d(noise_var * Ai);
        for (int k = 0; k < 3; ++k) out.precision[std::size_t(3 * a + k)] = std::sqrt(std::max(cov(k, k), 0.0));
    }
    return out;
}

}  // namespace aet
