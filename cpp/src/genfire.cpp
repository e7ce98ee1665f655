#include <aetcore/genfire.hpp>
#include <aetcore/memory.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace aet {
namespace {
inline index_t wrap(index_t k, index_t n) { return ((k % n) + n) % n; }
}  // namespace

void GenfirePlan::check(Shape3 grid, Shape3 box) {
    for (auto [v, name] : {std::pair{grid.nz, "n_grid"}, std::pair{grid.ny, "n_grid"}, std::pair{grid.nx, "n_grid"}})
        if (v < 1) throw std::invalid_argument(std::string(name) + ": expected >= 1, got " + std::to_string(v));
    for (auto [v, n, name] : {std::tuple{box.nz, grid.nz, "bz"}, std::tuple{box.ny, grid.ny, "by"},
                              std::tuple{box.nx, grid.nx, "bx"}})
        if (v < 1 || v > n)
            throw std::invalid_argument(std::string(name) + ": expected a box side in 1.." + std::to_string(n) +
                                        " (n_grid), got " + std::to_string(v));
}

void GenfirePlan::check(index_t n_grid, Shape3 box) { check(Shape3{n_grid, n_grid, n_grid}, box); }

double GenfirePlan::memory_bytes(Shape3 grid, int threads) {
    const double Nz = double(grid.nz), Ny = double(grid.ny), Nx = double(grid.nx);
    const double nt = double(resolve_threads(threads)), Ncol = std::max(Ny, Nz);
    return 8.0 * Nz * Ny * (Nx / 2 + 1) + nt * (8.0 * Ncol * 32 + 12.0 * Nx) + 8.0 * (Nz + Ny);
}

double GenfirePlan::memory_bytes(index_t n_grid, int threads) {
    return memory_bytes(Shape3{n_grid, n_grid, n_grid}, threads);
}

GenfirePlan::GenfirePlan(index_t n_grid, Shape3 box, int threads)
    : GenfirePlan(Shape3{n_grid, n_grid, n_grid}, box, threads) {}

GenfirePlan::GenfirePlan(Shape3 grid, Shape3 box, int threads)
    : Nz_(grid.nz), Ny_(grid.ny), Nx_(grid.nx), nh_(grid.nx / 2 + 1), box_(box),
      threads_(resolve_threads(threads)) {
    check(grid, box);
    const std::string name = Nz_ == Ny_ && Ny_ == Nx_ ? std::to_string(Nx_) + "^3"
                                                      : std::to_string(Nz_) + " x " + std::to_string(Ny_) + " x " +
                                                            std::to_string(Nx_);
    check_memory(memory_bytes(grid, threads_), "a GENFIRE plan on a " + name + " grid");
    // 32 adjacent columns (256 bytes a row) per gather: measured fastest for N = 180..384.
    tile_ = int(std::min<index_t>(32, nh_));
    spec_ = FftwBuffer<fftwf_complex>(std::size_t(Nz_ * Ny_ * nh_));
    r2c_ = plan_r2c_1d(int(Nx_));
    c2r_ = plan_c2r_1d(int(Nx_));
    coly_fwd_ = plan_c2c_columns(int(Ny_), tile_, FFTW_FORWARD);
    coly_inv_ = plan_c2c_columns(int(Ny_), tile_, FFTW_BACKWARD);
    colz_fwd_ = plan_c2c_columns(int(Nz_), tile_, FFTW_FORWARD);
    colz_inv_ = plan_c2c_columns(int(Nz_), tile_, FFTW_BACKWARD);
    zmap_.resize(box.nz);
    ymap_.resize(box.ny);
    xmap_.resize(box.nx);
    zin_.assign(Nz_, 0);
    yin_.assign(Ny_, 0);
    for (index_t i = 0; i < box.nz; ++i) { zmap_[i] = wrap(i - box.nz / 2, Nz_); zin_[zmap_[i]] = 1; }
    for (index_t i = 0; i < box.ny; ++i) { ymap_[i] = wrap(i - box.ny / 2, Ny_); yin_[ymap_[i]] = 1; }
    for (index_t i = 0; i < box.nx; ++i) xmap_[i] = wrap(i - box.nx / 2, Nx_);
}

std::size_t GenfirePlan::bytes() const {
    return spec_.size() * sizeof(fftwf_complex) +
           std::size_t(threads_) * (std::size_t(std::max(Ny_, Nz_)) * tile_ * sizeof(fftwf_complex) +
                                    3 * Nx_ * sizeof(float));
}

// 1D transforms along y inside the box's z planes. Forward: rows outside the box are zero on input.
// Inverse (only_box_out): only rows inside the box are written back.
void GenfirePlan::columns_y(bool forward_dir, bool only_box_out) {
    const index_t N = Ny_, nh = nh_, T = tile_;
    const index_t n_tiles = (nh + T - 1) / T;
    const index_t bz = box_.nz;
    fftwf_complex* S = spec_.data();
#pragma omp parallel num_threads(threads_)
    {
        FftwBuffer<fftwf_complex> buf(static_cast<std::size_t>(N * T));
        fftwf_complex* B = buf.data();
#pragma omp for collapse(2) schedule(static)
        for (index_t z = 0; z < bz; ++z) {
            for (index_t t = 0; t < n_tiles; ++t) {
                const index_t zf = zmap_[z], x0 = t * T, w = std::min(T, nh - x0);
                fftwf_complex* plane = S + zf * N * nh;
                for (index_t y = 0; y < N; ++y) {
                    fftwf_complex* dst = B + y * T;
                    if (forward_dir && !yin_[y]) {
                        std::memset(dst, 0, sizeof(fftwf_complex) * T);
                    } else {
                        std::memcpy(dst, plane + y * nh + x0, sizeof(fftwf_complex) * w);
                        if (w < T) std::memset(dst + w, 0, sizeof(fftwf_complex) * (T - w));
                    }
                }
                fftwf_execute_dft(forward_dir ? coly_fwd_.get() : coly_inv_.get(), B, B);
                for (index_t y = 0; y < N; ++y) {
                    if (only_box_out && !yin_[y]) continue;
                    std::memcpy(plane + y * nh + x0, B + y * T, sizeof(fftwf_complex) * w);
                }
            }
        }
    }
}

// 1D transforms along z over the whole half spectrum. Forward: planes outside the box are zero on
// input. Inverse: only planes inside the box are written back.
void GenfirePlan::columns_z(bool forward_dir) {
    const index_t N = Nz_, Ny = Ny_, nh = nh_, T = tile_;
    const index_t n_tiles = (nh + T - 1) / T;
    fftwf_complex* S = spec_.data();
    const index_t plane = Ny * nh;
#pragma omp parallel num_threads(threads_)
    {
        FftwBuffer<fftwf_complex> buf(static_cast<std::size_t>(N * T));
        fftwf_complex* B = buf.data();
#pragma omp for collapse(2) schedule(static)
        for (index_t y = 0; y < Ny; ++y) {
            for (index_t t = 0; t < n_tiles; ++t) {
                const index_t x0 = t * T, w = std::min(T, nh - x0);
                fftwf_complex* col = S + y * nh + x0;
                for (index_t z = 0; z < N; ++z) {
                    fftwf_complex* dst = B + z * T;
                    if (forward_dir && !zin_[z]) {
                        std::memset(dst, 0, sizeof(fftwf_complex) * T);
                    } else {
                        std::memcpy(dst, col + z * plane, sizeof(fftwf_complex) * w);
                        if (w < T) std::memset(dst + w, 0, sizeof(fftwf_complex) * (T - w));
                    }
                }
                fftwf_execute_dft(forward_dir ? colz_fwd_.get() : colz_inv_.get(), B, B);
                for (index_t z = 0; z < N; ++z) {
                    if (!forward_dir && !zin_[z]) continue;
                    std::memcpy(col + z * plane, B + z * T, sizeof(fftwf_complex) * w);
                }
            }
        }
    }
}

void GenfirePlan::forward(const float* box) {
    const index_t N = Nx_, Ny = Ny_, nh = nh_;
    const index_t bz = box_.nz, by = box_.ny, bx = box_.nx;
    fftwf_complex* S = spec_.data();
#pragma omp parallel num_threads(threads_)
    {
        FftwBuffer<float> row(static_cast<std::size_t>(N));
        FftwBuffer<fftwf_complex> out(static_cast<std::size_t>(nh));
        std::memset(row.data(), 0, sizeof(float) * N);
#pragma omp for collapse(2) schedule(static)
        for (index_t z = 0; z < bz; ++z) {
            for (index_t y = 0; y < by; ++y) {
                const float* src = box + (z * by + y) * bx;
                for (index_t i = 0; i < bx; ++i) row.data()[xmap_[i]] = src[i];
                fftwf_execute_dft_r2c(r2c_.get(), row.data(), out.data());
                std::memcpy(S + (zmap_[z] * Ny + ymap_[y]) * nh, out.data(), sizeof(fftwf_complex) * nh);
            }
        }
    }
    columns_y(true, false);
    columns_z(true);
}

void GenfirePlan::inverse(float* box) {
    const index_t N = Nx_, Ny = Ny_, nh = nh_;
    const index_t bz = box_.nz, by = box_.ny, bx = box_.nx;
    columns_z(false);
    columns_y(false, true);
    const float scale = float(1.0 / (double(Nz_) * double(Ny_) * double(Nx_)));
    fftwf_complex* S = spec_.data();
#pragma omp parallel num_threads(threads_)
    {
        FftwBuffer<float> row(static_cast<std::size_t>(N));
        FftwBuffer<fftwf_complex> in(static_cast<std::size_t>(nh));
#pragma omp for collapse(2) schedule(static)
        for (index_t z = 0; z < bz; ++z) {
            for (index_t y = 0; y < by; ++y) {
                std::memcpy(in.data(), S + (zmap_[z] * Ny + ymap_[y]) * nh, sizeof(fftwf_complex) * nh);
                fftwf_execute_dft_c2r(c2r_.get(), in.data(), row.data());
                float* dst = box + (z * by + y) * bx;
                for (index_t i = 0; i < bx; ++i) dst[i] = row.data()[xmap_[i]] * scale;
            }
        }
    }
}

FourierErrors GenfirePlan::iterate(float* box, const std::uint8_t* support, bool positivity,
                                   const std::int64_t* idx, const cfloat* val, index_t n_points,
                                   index_t n_enforce, const std::int64_t* free_idx,
                                   const cfloat* free_val, index_t n_free) {
    const std::int64_t limit = std::int64_t(Nz_) * Ny_ * nh_;
    if (n_points < 0 || n_free < 0) throw std::invalid_argument("index: expected a count >= 0");
    if (n_enforce < 0 || n_enforce > n_points)
        throw std::invalid_argument("n_enforce: expected 0.." + std::to_string(n_points) + ", got " +
                                    std::to_string(n_enforce));
    for (const auto& [p, n] : {std::pair{idx, n_points}, std::pair{free_idx, n_free}})
        for (index_t i = 0; i < n; ++i)
            if (p[i] < 0 || p[i] >= limit)
                throw std::invalid_argument("index: " + std::to_string(p[i]) + " is outside the half spectrum (0.." +
                                            std::to_string(limit - 1) + ")");
    forward(box);
    cfloat* S = spectrum();
    double num = 0, den = 0, fnum = 0, fden = 0;
#pragma omp parallel for reduction(+ : num, den) schedule(static) num_threads(threads_)
    for (index_t i = 0; i < n_points; ++i) {
        const cfloat cur = S[idx[i]];
        num += std::abs(cur - val[i]);
        den += std::abs(val[i]);
        if (i < n_enforce) S[idx[i]] = val[i];
    }
#pragma omp parallel for reduction(+ : fnum, fden) schedule(static) num_threads(threads_)
    for (index_t i = 0; i < n_free; ++i) {
        fnum += std::abs(S[free_idx[i]] - free_val[i]);
        fden += std::abs(free_val[i]);
    }
    inverse(box);
    const index_t nb = box_.size();
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (index_t i = 0; i < nb; ++i) {
        float v = box[i];
        if (positivity && v < 0) v = 0;
        if (support && !support[i]) v = 0;
        box[i] = v;
    }
    FourierErrors e;
    e.error = den > 0 ? num / den : 0.0;
    e.rfree = n_free > 0 && fden > 0 ? fnum / fden : -1.0;
    return e;
}

}  // namespace aet
