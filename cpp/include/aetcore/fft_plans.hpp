// FFTW single-precision plans: made once (under a lock, since FFTW's planner is not thread-safe),
// executed many times through the new-array interface, which is thread-safe.
#pragma once
#include <complex>
#include <cstddef>
#include <fftw3.h>
#include <memory>
#include <vector>
#include <aetcore/fftw_lock.hpp>  // the planner lock, shared with host programs

namespace aet {

using cfloat = std::complex<float>;

// An owning, SIMD-aligned buffer from fftwf_malloc.
template <class T>
struct FftwBuffer {
    T* ptr = nullptr;
    std::size_t n = 0;
    FftwBuffer() = default;
    explicit FftwBuffer(std::size_t count) : n(count) {
        ptr = static_cast<T*>(fftwf_malloc(sizeof(T) * (count ? count : 1)));
        if (!ptr) throw std::bad_alloc();
    }
    FftwBuffer(const FftwBuffer&) = delete;
    FftwBuffer& operator=(const FftwBuffer&) = delete;
    FftwBuffer(FftwBuffer&& o) noexcept : ptr(o.ptr), n(o.n) { o.ptr = nullptr; o.n = 0; }
    FftwBuffer& operator=(FftwBuffer&& o) noexcept {
        std::swap(ptr, o.ptr);
        std::swap(n, o.n);
        return *this;
    }
    ~FftwBuffer() { if (ptr) fftwf_free(ptr); }
    T* data() { return ptr; }
    const T* data() const { return ptr; }
    std::size_t size() const { return n; }
};

// A plan that destroys itself. Planning and destruction take the global planner lock.
class FftPlan {
  public:
    FftPlan() = default;
    explicit FftPlan(fftwf_plan p) : plan_(p) {}
    FftPlan(const FftPlan&) = delete;
    FftPlan& operator=(const FftPlan&) = delete;
    FftPlan(FftPlan&& o) noexcept : plan_(o.plan_) { o.plan_ = nullptr; }
    FftPlan& operator=(FftPlan&& o) noexcept { std::swap(plan_, o.plan_); return *this; }
    ~FftPlan();
    fftwf_plan get() const { return plan_; }
    explicit operator bool() const { return plan_ != nullptr; }

  private:
    fftwf_plan plan_ = nullptr;
};

// Planner flags used by the core: FFTW_MEASURE for small 1D/2D plans (cheap to measure and
// remembered as wisdom for the rest of the process).
constexpr unsigned kPlanFlags = FFTW_MEASURE;

// 1D real-to-complex / complex-to-real transforms of length n (single-threaded plans).
FftPlan plan_r2c_1d(int n);
FftPlan plan_c2r_1d(int n);
// `howmany` interleaved complex 1D transforms of length n: element j of transform b is at
// j * howmany + b (a tile of howmany adjacent columns). sign = FFTW_FORWARD or FFTW_BACKWARD.
FftPlan plan_c2c_columns(int n, int howmany, int sign);
// 2D real-to-complex transform of an n0 x n1 image (single-threaded).
FftPlan plan_r2c_2d(int n0, int n1);

// Wall time in seconds of one out-of-place 3D r2c plus one c2r transform of an n^3 grid with
// FFTW's own threading (the floor that one GENFIRE iteration is compared against): the median of
// `repeats` runs, planning excluded.
double time_fft_roundtrip_3d(int n, int threads, int repeats);

}  // namespace aet
