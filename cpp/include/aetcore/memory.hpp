// Memory estimates before large allocations: a call that would not fit is refused with a clear
// MemoryError (need and available) before any work, instead of the process being killed by the
// system (or, with memory overcommit, crashing later when the pages are touched).
//
// What is available is the least of:
//   - MemAvailable from /proc/meminfo (or the free physical pages where that file is missing),
//   - the cgroup v2 (memory.max - memory.current) or v1 (limit_in_bytes - usage_in_bytes) headroom,
//   - the address-space limit (ulimit -v) minus the process's current size,
//   - AETCORE_MEMORY_LIMIT: bytes, or with a K/M/G/T suffix (binary units, "8G", "1.5M", "1GiB"),
//     a share of a node set by the user.
// The Python package (aetcore._util.memory) calls these same functions: one rule for both.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace aet {

// Thrown when an estimate exceeds the memory available; the bindings translate it to Python's
// MemoryError. what() reads "<what> needs about X but only Y is available; ...".
class MemoryError : public std::runtime_error {
  public:
    MemoryError(const std::string& what, double need_bytes, double available_bytes);
    double need() const noexcept { return need_; }
    double available() const noexcept { return available_; }

  private:
    double need_, available_;
};

// AETCORE_MEMORY_LIMIT in bytes, or nullopt when unset or blank. Throws std::invalid_argument
// naming the variable when it is not a number with an optional K/M/G/T suffix.
std::optional<std::int64_t> memory_limit_from_env();

// Bytes the process can still take now (the least of the limits above, >= 0; 2^62 when none is known).
std::int64_t available_memory_bytes();

// "1.5 KiB", "3.0 GiB", "512 B" (binary units).
std::string format_bytes(double bytes);

// Throws MemoryError when `bytes` exceed available_memory_bytes(). `bytes` is a double because
// estimates are products of user sizes that may exceed any integer type (they are then refused).
// Throws std::invalid_argument when the estimate is NaN or negative (the sizes were invalid).
// `what` names the allocation ("projecting a volume", "GENFIRE on a 256^3 grid").
void check_memory(double bytes, const std::string& what);

}  // namespace aet
