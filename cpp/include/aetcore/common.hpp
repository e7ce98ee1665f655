// Small shared helpers of the aetcore core: thread counts, index types, errors.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <omp.h>

namespace aet {

using index_t = std::int64_t;

// Largest thread count accepted: OpenMP runtimes crash (not fail) when they cannot start the threads
// asked for (libgomp segfaults at 100000), so absurd counts are refused before any region starts.
constexpr int kMaxThreads = 1024;

// Number of OpenMP threads to use: <= 0 means every core the process may use.
inline int resolve_threads(int threads) {
    if (threads > kMaxThreads)
        throw std::invalid_argument("threads: expected at most " + std::to_string(kMaxThreads) + ", got " +
                                    std::to_string(threads));
    if (threads > 0) return threads;
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

// floor(x) / ceil(x) as an index clamped to [lo, hi]; NaN gives lo. Casting a huge or non-finite
// double to an integer is undefined behaviour, so every window computed from user coordinates
// goes through these.
inline index_t clamp_floor(double x, index_t lo, index_t hi) {
    if (!(x >= double(lo))) return lo;
    if (x >= double(hi)) return hi;
    return index_t(std::floor(x));
}
inline index_t clamp_ceil(double x, index_t lo, index_t hi) {
    if (!(x >= double(lo))) return lo;
    if (x >= double(hi)) return hi;
    return index_t(std::ceil(x));
}

// Shape of a 3D array stored C-contiguous as [nz][ny][nx].
struct Shape3 {
    index_t nz = 0, ny = 0, nx = 0;
    index_t size() const { return nz * ny * nx; }
};

}  // namespace aet
