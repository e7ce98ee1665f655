// The FFTW planner lock, shared with a host program.
//
// FFTW's planner is not thread-safe: only fftwf_execute* (and the new-array execute functions) may
// run concurrently. The core holds this mutex around every call that touches FFTW's global state:
// fftwf_init_threads, fftwf_plan_with_nthreads, every fftwf_plan_* call and fftwf_destroy_plan.
// A program that embeds aetcore and also calls FFTW (single precision, libfftw3f) from threads that
// may overlap with aetcore's calls must take the same mutex around its own planner calls:
//
//     #include <aetcore/fftw_lock.hpp>
//     {
//         std::lock_guard<std::mutex> lock(aet::fftw_planner_mutex());
//         fftwf_plan_with_nthreads(4);
//         plan = fftwf_plan_dft_r2c_3d(n, n, n, in, out, FFTW_MEASURE);
//     }
//     fftwf_execute_dft_r2c(plan, in, out);   // no lock needed
//
// The mutex is not recursive: do not call aetcore while holding it. Note that the core sets
// fftwf_plan_with_nthreads to its own thread count (then back to 1) while planning, so a host
// should set its own thread count under the lock right before planning, as above.
#pragma once
#include <mutex>

namespace aet {

// The process-wide mutex the core holds around every FFTW planner call (one instance per process
// that links aetcore; a shared libaetcore gives every module the same one).
std::mutex& fftw_planner_mutex();

}  // namespace aet
