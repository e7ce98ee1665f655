// Gridding: every projection's 2D FFT (zero-padded to the oversampled grid) placed into the 3D
// Fourier grid at R_k (k_u, k_v, 0) (Fourier slice theorem, CONVENTIONS.md).
//
// The 3D grid has sides (Nz, Ny, Nx), one per axis (a box that is not a cube gets a grid that is not
// a cube either), and is stored as the half spectrum of a real Nz x Ny x Nx volume, shape
// [Nz][Ny][Nx/2+1] indexed (kz, ky, kx) with kx >= 0; frequency index k in [-N/2, N/2) along an axis
// of side N maps to array index k mod N, and stands for k / N cycles per voxel. Distances are
// measured in per-axis index units (one grid step along every axis): a node g = (gx, gy, gz) is at
// distance |m . g| from a slice plane whose normal, in those units, is m ~ (nx / Nx, ny / Ny,
// nz / Nz) (unit length), for the plane's normal n in cycles per voxel. Each measured sample
// contributes to the grid points within `radius` of its plane, weighted by distance; contributions
// to one grid point are averaged by weight.
#pragma once
#include <cstdint>
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/fft_plans.hpp>
#include <aetcore/geometry.hpp>

namespace aet {

struct GriddingOptions {
    double radius = 0.3;      // interpolation radius, in grid steps
    int upsample = 1;         // 2D samples per grid step along each detector axis
    int threads = 0;          // <= 0: all cores
};

// Throws std::invalid_argument naming the option (radius, upsample, threads) unless it is in range.
void validate(const GriddingOptions& opt);

// Bytes grid_projections needs for K images on a grid of sides `grid` (counted in double: no
// overflow); the index_t overload is the cubic grid n_grid^3.
// An upper bound of the gridded records (grid nodes within `radius` of each projection's plane,
// in the half spectrum): the count the memory estimates use.
double gridding_points_bound(index_t K, Shape3 grid, const GriddingOptions& opt);
double gridding_memory_bytes(index_t K, Shape3 grid, const GriddingOptions& opt);
double gridding_memory_bytes(index_t K, index_t n_grid, const GriddingOptions& opt);

struct GriddedData {
    index_t n = 0;                      // the largest grid side
    Shape3 grid;                        // the grid sides (Nz, Ny, Nx)
    std::vector<std::int64_t> index;    // linear index (kz * Ny + ky) * (Nx/2+1) + kx, ascending
    std::vector<cfloat> value;          // weighted mean of the contributions
    std::vector<float> weight;          // sum of the weights
    std::vector<float> radius;          // |k| of the grid point in steps of the finest axis, 1 / n
                                        // cycles per voxel (a cubic grid: plain grid steps)
};

// tilts: K images of ny x nx (ny, nx >= 1, the largest grid side >= both; checked, as are the
// options) (origin at ny/2, nx/2); each is zero-padded to M x M, M = upsample * (largest grid side),
// before its FFT, so its samples fall every 1/upsample step of the finest grid axis in the slice
// plane. The index_t overload grids onto the cubic grid n_grid^3.
GriddedData grid_projections(const float* tilts, index_t K, index_t ny, index_t nx,
                             const std::vector<Mat3>& rotations, Shape3 grid,
                             const GriddingOptions& opt);
GriddedData grid_projections(const float* tilts, index_t K, index_t ny, index_t nx,
                             const std::vector<Mat3>& rotations, index_t n_grid,
                             const GriddingOptions& opt);

// The weight of a sample at distance d (grid steps) from a grid point, for radius r.
inline double gridding_weight(double d, double r) {
    // Inverse squared distance, as GENFIRE weighs its gridding, bounded so an exact hit does not
    // diverge.
    (void)r;
    return 1.0 / (d * d + 1e-5);
}

}  // namespace aet
