#include <aetcore/memory.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

namespace aet {
namespace {

std::string describe(const std::string& what, double need, double avail) {
    return what + " needs about " + format_bytes(need) + " but only " + format_bytes(avail) +
           " is available; reduce the size, the oversampling or run on a larger node";
}

std::string trim(const std::string& s) {
    std::size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

bool read_file(const char* path, std::string& text) {
    std::ifstream f(path);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
    return true;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::optional<std::int64_t> meminfo_available() {
    std::ifstream f("/proc/meminfo");
    std::string line;
    while (f && std::getline(f, line)) {
        if (line.rfind("MemAvailable:", 0) == 0) {
            std::istringstream is(line.substr(13));
            long long kib = -1;
            if (is >> kib && kib >= 0) return std::int64_t(kib) * 1024;
            break;
        }
    }
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) return std::int64_t(pages) * std::int64_t(page);
    return std::nullopt;
}

std::optional<std::int64_t> cgroup_available() {
    static const char* const paths[][2] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (const auto& p : paths) {
        std::string limit, used;
        if (!read_file(p[0], limit)) continue;
        limit = trim(limit);
        if (!all_digits(limit)) continue;  // "max": no limit
        if (!read_file(p[1], used)) continue;
        used = trim(used);
        if (!all_digits(used)) continue;
        try {
            // v1 reports "no limit" as a huge number near 2^63; clamp instead of overflowing.
            const double l = std::stod(limit), u = std::stod(used);
            const double d = std::min(l - u, 4.0e18);
            return std::int64_t(d);
        } catch (const std::exception&) {
            continue;
        }
    }
    return std::nullopt;
}

std::optional<std::int64_t> address_space_available() {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0) return std::nullopt;
    if (rl.rlim_cur == RLIM_INFINITY) return std::nullopt;
    std::int64_t size = 0;
    std::ifstream f("/proc/self/statm");
    long long pages = 0;
    const long page = sysconf(_SC_PAGE_SIZE);
    if (f >> pages && page > 0) size = std::int64_t(pages) * page;
    const double soft = double(rl.rlim_cur);
    return std::int64_t(std::min(soft, 4.0e18)) - size;
}

}  // namespace

MemoryError::MemoryError(const std::string& what, double need_bytes, double available_bytes)
    : std::runtime_error(describe(what, need_bytes, available_bytes)), need_(need_bytes),
      available_(available_bytes) {}

std::optional<std::int64_t> memory_limit_from_env() {
    const char* env = std::getenv("AETCORE_MEMORY_LIMIT");
    if (!env) return std::nullopt;
    const std::string text = trim(env);
    if (text.empty()) return std::nullopt;
    static const std::regex pattern(R"(([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?)", std::regex::icase);
    std::smatch m;
    if (!std::regex_match(text, m, pattern))
        throw std::invalid_argument("AETCORE_MEMORY_LIMIT: expected a number of bytes with an optional K/M/G/T "
                                    "suffix, got '" + text + "'");
    double unit = 1.0;
    if (m[2].length()) {
        switch (std::toupper(static_cast<unsigned char>(m[2].str()[0]))) {
            case 'K': unit = double(1LL << 10); break;
            case 'M': unit = double(1LL << 20); break;
            case 'G': unit = double(1LL << 30); break;
            case 'T': unit = double(1LL << 40); break;
        }
    }
    const double bytes = std::stod(m[1].str()) * unit;
    if (!(bytes < 9.0e18))
        throw std::invalid_argument("AETCORE_MEMORY_LIMIT: " + text + " is beyond any memory size");
    return std::int64_t(bytes);
}

std::int64_t available_memory_bytes() {
    std::vector<std::int64_t> candidates;
    for (auto v : {meminfo_available(), cgroup_available(), address_space_available(), memory_limit_from_env()})
        if (v) candidates.push_back(*v);
    if (candidates.empty()) return std::int64_t(1) << 62;
    return std::max<std::int64_t>(0, *std::min_element(candidates.begin(), candidates.end()));
}

std::string format_bytes(double n) {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    char buf[512];  // "%.1f" of an absurd estimate (1e300 bytes) prints every digit
    int i = 0;
    while (i < 5 && !(std::abs(n) < 1024)) {
        n /= 1024.0;
        ++i;
    }
    if (i == 0) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
    else std::snprintf(buf, sizeof buf, "%.1f %s", n, units[i]);
    return std::string(buf);
}

void check_memory(double bytes, const std::string& what) {
    if (std::isnan(bytes) || bytes < 0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", bytes);
        throw std::invalid_argument(what + ": the memory estimate is " + buf + "; the sizes given are not valid");
    }
    const double avail = double(available_memory_bytes());
    if (bytes > avail) throw MemoryError(what, bytes, avail);
}

}  // namespace aet
