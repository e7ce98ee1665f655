// Small shared helpers of the aetcore core: thread counts, index types, argument checks.
//
// Errors: every entry point of the core checks its own inputs and throws std::invalid_argument whose
// message starts with the argument's name ("ndx: expected a size >= 0, got -1"); the Python module
// turns it into ValueError. Estimates of large allocations throw aet::MemoryError (aetcore/memory.hpp).
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
    // The element count in double: sizes from user input may overflow index_t (they are then
    // refused by the memory estimate before anything is allocated).
    double count() const { return double(nz) * double(ny) * double(nx); }
};

// ---- argument checks: std::invalid_argument naming the argument ------------------------------

// Throws unless 0 <= value (a size or count).
inline void require_size(index_t value, const char* name) {
    if (value < 0)
        throw std::invalid_argument(std::string(name) + ": expected a size >= 0, got " + std::to_string(value));
}

// Throws unless every axis of `shape` is >= 0.
inline void require_shape(Shape3 shape, const char* name) {
    if (shape.nz < 0 || shape.ny < 0 || shape.nx < 0)
        throw std::invalid_argument(std::string(name) + ": expected a shape with sizes >= 0, got (" +
                                    std::to_string(shape.nz) + ", " + std::to_string(shape.ny) + ", " +
                                    std::to_string(shape.nx) + ")");
}

// Throws unless `value` is finite and > 0 (or >= 0 when `allow_zero`).
inline void require_positive(double value, const char* name, bool allow_zero = false) {
    if (!std::isfinite(value) || value < 0 || (!allow_zero && value == 0))
        throw std::invalid_argument(std::string(name) + ": expected a finite number " +
                                    (allow_zero ? ">= 0" : "> 0") + ", got " + std::to_string(value));
}

// Throws unless every one of the n values is finite.
template <class T>
void require_finite(const T* data, index_t n, const char* name) {
    for (index_t i = 0; i < n; ++i)
        if (!std::isfinite(double(data[i])))
            throw std::invalid_argument(std::string(name) + ": expected finite values, got " +
                                        std::to_string(double(data[i])) + " at flat index " + std::to_string(i));
}

// Throws unless `data` is non-null when it must hold n > 0 elements.
inline void require_data(const void* data, double n, const char* name) {
    if (!data && n > 0)
        throw std::invalid_argument(std::string(name) + ": null pointer for " + std::to_string(n) + " elements");
}

}  // namespace aet
