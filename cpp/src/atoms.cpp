#include <aetcore/atoms.hpp>
#include <algorithm>
#include <cmath>

namespace aet {

void gaussian_cell_means(double c, double s, index_t i0, index_t n, double* out) {
    const double inv = 1.0 / (std::sqrt(2.0) * s);
    double prev = std::erf((double(i0) - 0.5 - c) * inv);
    for (index_t j = 0; j < n; ++j) {
        const double next = std::erf((double(i0 + j) + 0.5 - c) * inv);
        out[j] = 0.5 * (next - prev);
        prev = next;
    }
}

void project_atoms(const AtomSet& atoms, const std::vector<Mat3>& rotations, index_t ndy,
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

void render_atoms(const AtomSet& atoms, Shape3 s, float* vol, int threads) {
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

}  // namespace aet
