#include <aetcore/atoms.hpp>
#include <aetcore/memory.hpp>
#include <aetcore/projector.hpp>
#include <algorithm>
#include "erf_table.hpp"
#include <cmath>

namespace aet {

void gaussian_cell_means(double c, double s, index_t i0, index_t n, double* out) {
    // erf from the table of erf_table.hpp (within 4e-16 of std::erf, several times faster)
    const detail::ErfTable& erf = detail::erf_table();
    const double inv = 1.0 / (std::sqrt(2.0) * s);
    double prev = erf((double(i0) - 0.5 - c) * inv);
    for (index_t j = 0; j < n; ++j) {
        const double next = erf((double(i0 + j) + 0.5 - c) * inv);
        out[j] = 0.5 * (next - prev);
        prev = next;
    }
}

// The kernels, on checked inputs.
static void project_atoms_run(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                              index_t ndx, float* out, int threads) {
    const index_t K = index_t(rotations.size());
    const double two_pi_32 = std::pow(2.0 * M_PI, 1.5);
    const int nt = resolve_threads(threads);
#pragma omp parallel num_threads(nt)
    {
        std::vector<double> gx, gy;
#pragma omp for schedule(dynamic, 1)
        for (index_t k = 0; k < K; ++k) {
            float* img = out + k * ndy * ndx;
            std::fill(img, img + ndy * ndx, 0.0f);
            const Mat3 Rt = rotations[k].transpose();
            for (index_t a = 0; a < atoms.n; ++a) {
                const double* r = atoms.positions + 3 * a;
                const int s = atoms.species[a];
                const double sig = atoms.sigmas[s];
                const double amp = atoms.heights[s] * two_pi_32 * sig * sig * sig;
                const double u = Rt(0, 0) * r[0] + Rt(0, 1) * r[1] + Rt(0, 2) * r[2] + double(ndx / 2);
                const double v = Rt(1, 0) * r[0] + Rt(1, 1) * r[1] + Rt(1, 2) * r[2] + double(ndy / 2);
                const double ext = atoms.cutoff * sig;
                const index_t u0 = clamp_floor(u - ext, 0, ndx), u1 = clamp_ceil(u + ext, -1, ndx - 1);
                const index_t v0 = clamp_floor(v - ext, 0, ndy), v1 = clamp_ceil(v + ext, -1, ndy - 1);
                if (u0 > u1 || v0 > v1) continue;
                gx.resize(u1 - u0 + 1);
                gy.resize(v1 - v0 + 1);
                gaussian_cell_means(u, sig, u0, u1 - u0 + 1, gx.data());
                gaussian_cell_means(v, sig, v0, v1 - v0 + 1, gy.data());
                for (index_t iv = v0; iv <= v1; ++iv) {
                    const double wy = amp * gy[iv - v0];
                    float* row = img + iv * ndx;
                    for (index_t iu = u0; iu <= u1; ++iu) row[iu] += float(wy * gx[iu - u0]);
                }
            }
        }
    }
}

static void render_atoms_run(const AtomSet& atoms, Shape3 s, float* vol, int threads) {
    const int nt = resolve_threads(threads);
    const double two_pi_32 = std::pow(2.0 * M_PI, 1.5);
    const index_t n_slabs = std::max<index_t>(1, std::min<index_t>(s.nz, index_t(nt) * 4));
    const index_t sy = s.nx, sz = s.nx * s.ny;
#pragma omp parallel num_threads(nt)
    {
        std::vector<double> gx, gy, gz;
#pragma omp for schedule(dynamic, 1)
        for (index_t slab = 0; slab < n_slabs; ++slab) {
            const index_t z0 = s.nz * slab / n_slabs, z1 = s.nz * (slab + 1) / n_slabs;
            std::fill(vol + z0 * sz, vol + z1 * sz, 0.0f);
            for (index_t a = 0; a < atoms.n; ++a) {
                const double* r = atoms.positions + 3 * a;
                const int sp = atoms.species[a];
                const double sig = atoms.sigmas[sp];
                const double amp = atoms.heights[sp] * two_pi_32 * sig * sig * sig;
                const double x = r[0] + double(s.nx / 2), y = r[1] + double(s.ny / 2),
                             z = r[2] + double(s.nz / 2);
                const double ext = atoms.cutoff * sig;
                const index_t za = clamp_floor(z - ext, z0, z1), zb = clamp_ceil(z + ext, z0 - 1, z1 - 1);
                if (za > zb) continue;
                const index_t xa = clamp_floor(x - ext, 0, s.nx), xb = clamp_ceil(x + ext, -1, s.nx - 1);
                const index_t ya = clamp_floor(y - ext, 0, s.ny), yb = clamp_ceil(y + ext, -1, s.ny - 1);
                if (xa > xb || ya > yb) continue;
                gx.resize(xb - xa + 1);
                gy.resize(yb - ya + 1);
                gz.resize(zb - za + 1);
                gaussian_cell_means(x, sig, xa, xb - xa + 1, gx.data());
                gaussian_cell_means(y, sig, ya, yb - ya + 1, gy.data());
                gaussian_cell_means(z, sig, za, zb - za + 1, gz.data());
                for (index_t iz = za; iz <= zb; ++iz) {
                    const double wz = amp * gz[iz - za];
                    for (index_t iy = ya; iy <= yb; ++iy) {
                        const double wy = wz * gy[iy - ya];
                        float* row = vol + iz * sz + iy * sy;
                        for (index_t ix = xa; ix <= xb; ++ix) row[ix] += float(wy * gx[ix - xa]);
                    }
                }
            }
        }
    }
}

void validate_atoms(const AtomSet& a) {
    require_size(a.n, "positions");
    require_data(a.positions, 3.0 * double(a.n), "positions");
    require_data(a.species, double(a.n), "species");
    if (a.sigmas.size() != a.heights.size())
        throw std::invalid_argument("sigmas: expected one per species (" + std::to_string(a.heights.size()) +
                                    " heights), got " + std::to_string(a.sigmas.size()));
    for (index_t i = 0; i < a.n; ++i)
        if (a.species[i] < 0 || a.species[i] >= index_t(a.heights.size()))
            throw std::invalid_argument("species: index " + std::to_string(a.species[i]) + " of atom " +
                                        std::to_string(i) + " is outside 0.." +
                                        std::to_string(index_t(a.heights.size()) - 1));
    require_finite(a.positions, 3 * a.n, "positions");
    require_finite(a.heights.data(), index_t(a.heights.size()), "heights");
    require_positive(a.cutoff, "cutoff");
    for (std::size_t q = 0; q < a.sigmas.size(); ++q) {
        const double s = a.sigmas[q];
        if (!(s > 0) || !std::isfinite(s))
            throw std::invalid_argument("sigmas: every sigma must be finite and positive");
        // The amplitude H (2 pi)^{3/2} s^3 and the window cutoff * s must stay finite.
        if (!std::isfinite(a.heights[q] * std::pow(2.0 * M_PI, 1.5) * s * s * s) || !std::isfinite(a.cutoff * s))
            throw std::invalid_argument("sigmas: sigma " + std::to_string(s) + " of species " + std::to_string(q) +
                                        " overflows the atom's amplitude or window");
    }
}

static void check_project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                                index_t ndx, int threads) {
    validate_atoms(atoms);
    require_size(ndy, "ndy");
    require_size(ndx, "ndx");
    require_finite_rotations(rotations, "rotations");
    resolve_threads(threads);
}

void project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy, index_t ndx, float* out,
                   int threads) {
    check_project_atoms(atoms, rotations, ndy, ndx, threads);
    require_data(out, double(rotations.size()) * double(ndy) * double(ndx), "out");
    project_atoms_run(atoms, rotations, ndy, ndx, out, threads);
}

std::vector<float> project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
                                 index_t ndx, int threads) {
    check_project_atoms(atoms, rotations, ndy, ndx, threads);
    check_memory(4.0 * double(rotations.size()) * double(ndy) * double(ndx), "projecting atoms");
    std::vector<float> out(std::size_t(rotations.size()) * std::size_t(ndy) * std::size_t(ndx));
    project_atoms_run(atoms, rotations, ndy, ndx, out.data(), threads);
    return out;
}

void render_atoms(const AtomSet& atoms, Shape3 shape, float* vol, int threads) {
    validate_atoms(atoms);
    require_shape(shape, "shape");
    resolve_threads(threads);
    require_data(vol, shape.count(), "vol");
    render_atoms_run(atoms, shape, vol, threads);
}

std::vector<float> render_atoms(const AtomSet& atoms, Shape3 shape, int threads) {
    validate_atoms(atoms);
    require_shape(shape, "shape");
    resolve_threads(threads);
    check_memory(4.0 * shape.count(), "rendering atoms");
    std::vector<float> vol(std::size_t(shape.size()));
    render_atoms_run(atoms, shape, vol.data(), threads);
    return vol;
}

void footprint_sums(const double* positions, index_t n, const std::vector<Mat3>& rotations, index_t ndy,
                    index_t ndx, const std::vector<double>& amplitudes, const std::vector<double>& sigmas,
                    index_t half, const float* images, const float* weights, double* a, double* c, int threads) {
    require_size(ndy, "ndy");
    require_size(ndx, "ndx");
    const index_t S = index_t(sigmas.size());
    if (S < 1 || index_t(amplitudes.size()) != S)
        throw std::invalid_argument("amplitudes/sigmas: expected one of each per species (at least one), got " +
                                    std::to_string(amplitudes.size()) + " and " + std::to_string(S));
    for (index_t s = 0; s < S; ++s) {
        if (!(sigmas[s] > 0) || !std::isfinite(sigmas[s]))
            throw std::invalid_argument("sigmas: every sigma must be finite and positive");
        if (!std::isfinite(amplitudes[s])) throw std::invalid_argument("amplitudes: every amplitude must be finite");
    }
    if (half < 0 || half > 4096) throw std::invalid_argument("half: expected 0..4096, got " + std::to_string(half));
    require_finite_rotations(rotations, "rotations");
    const int nt = resolve_threads(threads);
    if (n < 0) throw std::invalid_argument("positions: negative atom count");
    if (n == 0) return;
    require_data(positions, 3.0 * double(n), "positions");
    require_finite(positions, 3 * n, "positions");
    const double npix = double(rotations.size()) * double(ndy) * double(ndx);
    require_data(images, npix, "images");
    require_data(weights, npix, "weights");
    require_data(a, double(n) * S, "a");
    require_data(c, double(n) * S * S, "c");
    const index_t K = index_t(rotations.size()), W = 2 * half + 1;
    std::vector<Mat3> rt(rotations.size());
    for (std::size_t k = 0; k < rotations.size(); ++k) rt[k] = rotations[k].transpose();
#pragma omp parallel num_threads(nt)
    {
        std::vector<double> fx(S * W), fy(S * W), gx(S), wx(S * S), as(S), cs(S * S);
#pragma omp for schedule(dynamic, 16)
        for (index_t i = 0; i < n; ++i) {
            const double* r = positions + 3 * i;
            std::fill(as.begin(), as.end(), 0.0);
            std::fill(cs.begin(), cs.end(), 0.0);
            for (index_t k = 0; k < K; ++k) {
                const Mat3& Rt = rt[k];
                const double u = Rt(0, 0) * r[0] + Rt(0, 1) * r[1] + Rt(0, 2) * r[2] + double(ndx / 2);
                const double v = Rt(1, 0) * r[0] + Rt(1, 1) * r[1] + Rt(1, 2) * r[2] + double(ndy / 2);
                const index_t ju = index_t(std::floor(u + 0.5)) - half, jv = index_t(std::floor(v + 0.5)) - half;
                // the window's columns and rows on the detector
                const index_t x0 = std::max<index_t>(ju, 0), x1 = std::min<index_t>(ju + W, ndx);
                const index_t y0 = std::max<index_t>(jv, 0), y1 = std::min<index_t>(jv + W, ndy);
                if (x0 >= x1 || y0 >= y1) continue;
                for (index_t s = 0; s < S; ++s) {
                    gaussian_cell_means(u, sigmas[s], ju, W, fx.data() + s * W);
                    gaussian_cell_means(v, sigmas[s], jv, W, fy.data() + s * W);
                }
                const float* img = images + k * ndy * ndx;
                const float* wgt = weights + k * ndy * ndx;
                for (index_t y = y0; y < y1; ++y) {
                    const float* ir = img + y * ndx;
                    const float* wr = wgt + y * ndx;
                    std::fill(gx.begin(), gx.end(), 0.0);
                    std::fill(wx.begin(), wx.end(), 0.0);
                    for (index_t x = x0; x < x1; ++x) {
                        const double g = double(ir[x] * wr[x]), w = double(wr[x]);
                        for (index_t s = 0; s < S; ++s) {
                            const double f = fx[s * W + (x - ju)];
                            gx[s] += g * f;
                            for (index_t t = s; t < S; ++t) wx[s * S + t] += w * f * fx[t * W + (x - ju)];
                        }
                    }
                    for (index_t s = 0; s < S; ++s) {
                        const double f = fy[s * W + (y - jv)];
                        as[s] += f * gx[s];
                        for (index_t t = s; t < S; ++t) cs[s * S + t] += f * fy[t * W + (y - jv)] * wx[s * S + t];
                    }
                }
            }
            for (index_t s = 0; s < S; ++s) {
                a[i * S + s] = amplitudes[s] * as[s];
                for (index_t t = s; t < S; ++t) {
                    const double v = amplitudes[s] * amplitudes[t] * cs[s * S + t];
                    c[(i * S + s) * S + t] = v;
                    c[(i * S + t) * S + s] = v;
                }
            }
        }
    }
}

}  // namespace aet
