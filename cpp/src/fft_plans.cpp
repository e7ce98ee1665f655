#include <aetcore/fft_plans.hpp>
#include <aetcore/fftw_lock.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#if AETCORE_FFTW_OMP
#include <omp.h>
#endif

namespace aet {

std::mutex& fftw_planner_mutex() {  // aetcore/fftw_lock.hpp: shared with host programs
    static std::mutex m;
    return m;
}

namespace {

std::mutex& planner_mutex() { return fftw_planner_mutex(); }

void ensure_threads_initialised() {
    static bool done = [] {
        fftwf_init_threads();
        return true;
    }();
    (void)done;
}

FftPlan checked(fftwf_plan p, const char* what) {
    if (!p) throw std::runtime_error(std::string("FFTW could not make a plan for ") + what);
    return FftPlan(p);
}

}  // namespace

FftPlan::~FftPlan() {
    if (plan_) {
        std::lock_guard<std::mutex> lock(planner_mutex());
        fftwf_destroy_plan(plan_);
    }
}

FftPlan plan_r2c_1d(int n) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    ensure_threads_initialised();
    fftwf_plan_with_nthreads(1);
    FftwBuffer<float> in(n);
    FftwBuffer<fftwf_complex> out(n / 2 + 1);
    return checked(fftwf_plan_dft_r2c_1d(n, in.data(), out.data(), kPlanFlags), "a 1D r2c");
}

FftPlan plan_c2r_1d(int n) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    ensure_threads_initialised();
    fftwf_plan_with_nthreads(1);
    FftwBuffer<fftwf_complex> in(n / 2 + 1);
    FftwBuffer<float> out(n);
    return checked(fftwf_plan_dft_c2r_1d(n, in.data(), out.data(), kPlanFlags), "a 1D c2r");
}

FftPlan plan_c2c_columns(int n, int howmany, int sign) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    ensure_threads_initialised();
    fftwf_plan_with_nthreads(1);
    FftwBuffer<fftwf_complex> buf(std::size_t(n) * howmany);
    std::memset(buf.data(), 0, sizeof(fftwf_complex) * buf.size());
    int dims[1] = {n};
    return checked(fftwf_plan_many_dft(1, dims, howmany, buf.data(), nullptr, howmany, 1,
                                       buf.data(), nullptr, howmany, 1, sign, kPlanFlags),
                   "column c2c");
}

FftPlan plan_r2c_2d(int n0, int n1) {
    std::lock_guard<std::mutex> lock(planner_mutex());
    ensure_threads_initialised();
    fftwf_plan_with_nthreads(1);
    FftwBuffer<float> in(std::size_t(n0) * n1);
    FftwBuffer<fftwf_complex> out(static_cast<std::size_t>(n0) * (n1 / 2 + 1));
    return checked(fftwf_plan_dft_r2c_2d(n0, n1, in.data(), out.data(), kPlanFlags), "a 2D r2c");
}

double time_fft_roundtrip_3d(int n, int threads, int repeats) {
    const std::size_t nh = std::size_t(n / 2 + 1);
    FftwBuffer<float> real(std::size_t(n) * n * n);
    FftwBuffer<fftwf_complex> spec(std::size_t(n) * n * nh);
    FftPlan fwd, inv;
    {
        std::lock_guard<std::mutex> lock(planner_mutex());
        ensure_threads_initialised();
        fftwf_plan_with_nthreads(threads);
        fwd = checked(fftwf_plan_dft_r2c_3d(n, n, n, real.data(), spec.data(), FFTW_MEASURE),
                      "a 3D r2c");
        inv = checked(fftwf_plan_dft_c2r_3d(n, n, n, spec.data(), real.data(), FFTW_MEASURE),
                      "a 3D c2r");
        fftwf_plan_with_nthreads(1);
    }
    for (std::size_t i = 0; i < real.size(); ++i) real.data()[i] = float((i * 2654435761u) % 1000) * 1e-3f;
    std::vector<double> times;
    for (int r = 0; r < std::max(1, repeats); ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        fftwf_execute(fwd.get());
        fftwf_execute(inv.get());
        const auto t1 = std::chrono::steady_clock::now();
        times.push_back(std::chrono::duration<double>(t1 - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace aet
