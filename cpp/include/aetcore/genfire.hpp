// The GENFIRE iteration (Pryor et al., Sci. Rep. 7, 10409 (2017)) on the oversampled grid.
//
// The object lives in a box of bz x by x bx voxels inside an N^3 oversampled grid; everything
// outside the box is zero by the support constraint. The plan exploits that: its 3D FFTs are done
// axis by axis and skip every 1D transform whose input is known to be zero (forward) or whose
// output is not needed (inverse), so a full iteration costs about half of one r2c plus one c2r of
// the N^3 grid, and no N^3 real array is ever held (memory: the N x N x (N/2+1) half spectrum and
// the box).
#pragma once
#include <cstdint>
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/fft_plans.hpp>

namespace aet {

struct FourierErrors {
    double error = 0;   // sum |F - F_meas| / sum |F_meas| over the constrained (non-free) points
    double rfree = -1;  // the same over the held-out points (-1 when there are none)
};

class GenfirePlan {
  public:
    GenfirePlan(index_t n_grid, Shape3 box, int threads);

    index_t n_grid() const { return N_; }
    Shape3 box() const { return box_; }
    int threads() const { return threads_; }
    // Bytes held by the plan (the half spectrum and the FFT scratch).
    std::size_t bytes() const;

    // spectrum = FFT3 of the box placed at the grid origin (the box origin (b/2) at index 0).
    void forward(const float* box);
    // box = the part inside the box of IFFT3(spectrum) / N^3 (destroys the spectrum).
    void inverse(float* box);

    // One GENFIRE iteration, in place on `box`:
    //   F = FFT(box); errors measured at the points; F[idx[i]] = val[i] for i < n_enforce;
    //   box = IFFT(F), then positivity (if asked) and zero outside `support` (nullptr: whole box).
    FourierErrors iterate(float* box, const std::uint8_t* support, bool positivity,
                          const std::int64_t* idx, const cfloat* val, index_t n_points,
                          index_t n_enforce, const std::int64_t* free_idx, const cfloat* free_val,
                          index_t n_free);

    // Direct access to the half spectrum [N][N][N/2+1].
    cfloat* spectrum() { return reinterpret_cast<cfloat*>(spec_.data()); }

  private:
    index_t N_, nh_;
    Shape3 box_;
    int threads_;
    int tile_;
    FftwBuffer<fftwf_complex> spec_;
    FftPlan r2c_, c2r_, col_fwd_, col_inv_;
    std::vector<index_t> zmap_, ymap_, xmap_;  // box index -> grid index (wrap-around)
    std::vector<std::uint8_t> zin_, yin_;      // grid index is inside the box

    void columns_y(bool forward_dir, bool only_box_out);
    void columns_z(bool forward_dir);
};

}  // namespace aet
