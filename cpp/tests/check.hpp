// A tiny assertion helper for the C++ tests (no framework): failed checks are printed with their
// file and line and counted; the test's main returns aet_test::report(), non-zero on any failure.
//
//   AET_CHECK(cond)                      the condition holds
//   AET_CHECK_CLOSE(a, b, rtol, atol)    |a - b| <= atol + rtol * max(|a|, |b|)
//   AET_CHECK_THROWS(expr, Exc, "text")  expr throws Exc (or a subclass) whose what() contains "text"
#pragma once
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

namespace aet_test {

inline int& failures() {
    static int n = 0;
    return n;
}
inline int& checks() {
    static int n = 0;
    return n;
}

inline void fail(const char* file, int line, const std::string& msg) {
    ++failures();
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, msg.c_str());
}

inline bool close(double a, double b, double rtol, double atol) {
    return std::abs(a - b) <= atol + rtol * std::fmax(std::abs(a), std::abs(b));
}

// Prints a summary; returns the exit code of the test program.
inline int report(const char* name) {
    std::printf("%s: %d checks, %d failed\n", name, checks(), failures());
    return failures() ? 1 : 0;
}

}  // namespace aet_test

#define AET_CHECK(cond)                                                               \
    do {                                                                              \
        ++aet_test::checks();                                                         \
        if (!(cond)) aet_test::fail(__FILE__, __LINE__, "AET_CHECK(" #cond ")");      \
    } while (0)

#define AET_CHECK_CLOSE(a, b, rtol, atol)                                                             \
    do {                                                                                              \
        ++aet_test::checks();                                                                         \
        const double aet_a_ = (a), aet_b_ = (b);                                                      \
        if (!aet_test::close(aet_a_, aet_b_, (rtol), (atol))) {                                       \
            char aet_buf_[256];                                                                       \
            std::snprintf(aet_buf_, sizeof aet_buf_, "%s = %.9g vs %s = %.9g (rtol %g, atol %g)", #a, \
                          aet_a_, #b, aet_b_, double(rtol), double(atol));                            \
            aet_test::fail(__FILE__, __LINE__, aet_buf_);                                             \
        }                                                                                             \
    } while (0)

#define AET_CHECK_THROWS(expr, Exc, text)                                                                  \
    do {                                                                                                   \
        ++aet_test::checks();                                                                              \
        bool aet_thrown_ = false;                                                                          \
        try {                                                                                              \
            (void)(expr);                                                                                  \
        } catch (const Exc& e) {                                                                           \
            aet_thrown_ = true;                                                                            \
            if (!std::strstr(e.what(), (text)))                                                            \
                aet_test::fail(__FILE__, __LINE__,                                                         \
                               std::string(#expr " threw '") + e.what() + "' without '" + (text) + "'");   \
        } catch (const std::exception& e) {                                                                \
            aet_thrown_ = true;                                                                            \
            aet_test::fail(__FILE__, __LINE__, std::string(#expr " threw another type: ") + e.what());     \
        }                                                                                                  \
        if (!aet_thrown_) aet_test::fail(__FILE__, __LINE__, #expr " did not throw " #Exc);               \
    } while (0)
