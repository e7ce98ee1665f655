// Small shared helpers of the aetcore core: thread counts, index types, errors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <omp.h>

namespace aet {

using index_t = std::int64_t;

// Number of OpenMP threads to use: <= 0 means every core the process may use.
inline int resolve_threads(int threads) {
    if (threads > 0) return threads;
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

// Shape of a 3D array stored C-contiguous as [nz][ny][nx].
struct Shape3 {
    index_t nz = 0, ny = 0, nx = 0;
    index_t size() const { return nz * ny * nx; }
};

}  // namespace aet
