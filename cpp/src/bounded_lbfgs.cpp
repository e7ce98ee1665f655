// Projected limited-memory BFGS with simple bounds: see aetcore/bounded_lbfgs.hpp for the algorithm.
#include <aetcore/bounded_lbfgs.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>

namespace aet {

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kC1 = 1e-3;  // sufficient decrease
constexpr double kC2 = 0.9;   // curvature
constexpr double kExtrapolate = 4.0;

struct Pair {
    std::vector<double> s, y;
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double r = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) r += a[i] * b[i];
    return r;
}

bool all_finite(const std::vector<double>& v) {
    for (double x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

double projected_gradient_norm(const std::vector<double>& x, const std::vector<double>& g,
                               const std::vector<double>& lo, const std::vector<double>& hi) {
    double m = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double p = std::min(std::max(x[i] - g[i], lo[i]), hi[i]) - x[i];
        m = std::max(m, std::abs(p));
    }
    return m;
}

// The minimiser of the quadratic through (a, fa) with slope da at a and (b, fb), kept inside
// [a + 0.1 (b - a), a + 0.5 (b - a)] (b may be below or above a).
double safeguarded_quadratic(double a, double fa, double da, double b, double fb) {
    const double t = b - a;
    const double curv = fb - fa - da * t;  // > 0 when the quadratic has a minimum
    double step = 0.5 * t;
    if (curv > 0 && std::isfinite(curv)) step = -da * t * t / (2.0 * curv);
    const double lo = 0.1 * t, hi = 0.5 * t;
    if (t > 0) step = std::min(std::max(step, lo), hi);
    else step = std::max(std::min(step, lo), hi);
    return a + step;
}

}  // namespace

BoundedLbfgsResult minimize_bounded_lbfgs(const BoundedObjective& fun, std::vector<double> x0,
                                          const std::vector<double>& lower, const std::vector<double>& upper,
                                          const BoundedLbfgsOptions& opt, const BoundedIterationCallback& callback) {
    const std::size_t n = x0.size();
    if (lower.size() != n)
        throw std::invalid_argument("lower: expected " + std::to_string(n) + " bounds, got " + std::to_string(lower.size()));
    if (upper.size() != n)
        throw std::invalid_argument("upper: expected " + std::to_string(n) + " bounds, got " + std::to_string(upper.size()));
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x0[i]))
            throw std::invalid_argument("x0: expected finite values, got " + std::to_string(x0[i]) + " at index " +
                                        std::to_string(i));
        if (std::isnan(lower[i]) || std::isnan(upper[i]) || lower[i] > upper[i] || lower[i] == HUGE_VAL ||
            upper[i] == -HUGE_VAL)
            throw std::invalid_argument("lower/upper: expected lower <= upper with lower < +inf and upper > -inf, got [" +
                                        std::to_string(lower[i]) + ", " + std::to_string(upper[i]) + "] at index " +
                                        std::to_string(i));
    }
    if (opt.memory < 1) throw std::invalid_argument("memory: expected a value >= 1, got " + std::to_string(opt.memory));
    if (opt.max_iterations < 0)
        throw std::invalid_argument("max_iterations: expected a value >= 0, got " + std::to_string(opt.max_iterations));
    if (!(opt.ftol >= 0)) throw std::invalid_argument("ftol: expected a value >= 0, got " + std::to_string(opt.ftol));
    if (!(opt.gtol >= 0)) throw std::invalid_argument("gtol: expected a value >= 0, got " + std::to_string(opt.gtol));
    if (opt.max_evaluations < 1)
        throw std::invalid_argument("max_evaluations: expected a value >= 1, got " + std::to_string(opt.max_evaluations));
    if (opt.max_line_search < 1)
        throw std::invalid_argument("max_line_search: expected a value >= 1, got " + std::to_string(opt.max_line_search));

    auto project = [&](std::vector<double>& v) {
        for (std::size_t i = 0; i < n; ++i) v[i] = std::min(std::max(v[i], lower[i]), upper[i]);
    };

    BoundedLbfgsResult res;
    std::vector<double> x = std::move(x0);
    project(x);
    std::vector<double> g(n, 0.0);
    double f = fun(x, g);
    res.evaluations = 1;
    if (!std::isfinite(f) || !all_finite(g))
        throw std::invalid_argument("x0: the objective or its gradient is not finite at the start");

    auto finish = [&](const std::string& msg, bool converged) {
        res.x = x;
        res.f = f;
        res.grad = g;
        res.projected_gradient = projected_gradient_norm(x, g, lower, upper);
        res.message = msg;
        res.converged = converged;
        return res;
    };
    if (projected_gradient_norm(x, g, lower, upper) <= opt.gtol)
        return finish("CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL", true);

    std::deque<Pair> pairs;
    std::vector<char> free_var(n);
    std::vector<double> d(n), q(n), xt(n), gt(n), xbest(n), gbest(n), alpha_i;
    std::vector<double> rho_i;
    std::vector<std::size_t> used;
    bool steepest_retry = false;  // the last search failed: the next direction is -g with no memory

    while (res.iterations < opt.max_iterations) {
        // 1. active set
        for (std::size_t i = 0; i < n; ++i)
            free_var[i] = !((x[i] <= lower[i] && g[i] > 0) || (x[i] >= upper[i] && g[i] < 0));

        // 2. direction: two-loop recursion on the free variables
        for (std::size_t i = 0; i < n; ++i) q[i] = free_var[i] ? g[i] : 0.0;
        used.clear();
        alpha_i.assign(pairs.size(), 0.0);
        rho_i.assign(pairs.size(), 0.0);
        double gamma = 0.0;
        for (std::size_t k = pairs.size(); k-- > 0;) {  // newest to oldest
            const Pair& p = pairs[k];
            double sy = 0.0, yy = 0.0, sq = 0.0;
            for (std::size_t i = 0; i < n; ++i)
                if (free_var[i]) {
                    sy += p.s[i] * p.y[i];
                    yy += p.y[i] * p.y[i];
                    sq += p.s[i] * q[i];
                }
            if (!(sy > kEps * yy) || !(yy > 0)) continue;
            if (gamma == 0.0) gamma = sy / yy;
            rho_i[k] = 1.0 / sy;
            alpha_i[k] = rho_i[k] * sq;
            for (std::size_t i = 0; i < n; ++i)
                if (free_var[i]) q[i] -= alpha_i[k] * p.y[i];
            used.push_back(k);
        }
        bool steepest = used.empty();
        if (!steepest) {
            for (std::size_t i = 0; i < n; ++i) q[i] *= gamma;
            for (std::size_t u = used.size(); u-- > 0;) {  // oldest to newest
                const std::size_t k = used[u];
                const Pair& p = pairs[k];
                double yr = 0.0;
                for (std::size_t i = 0; i < n; ++i)
                    if (free_var[i]) yr += p.y[i] * q[i];
                const double beta = rho_i[k] * yr;
                for (std::size_t i = 0; i < n; ++i)
                    if (free_var[i]) q[i] += (alpha_i[k] - beta) * p.s[i];
            }
        }
        for (std::size_t i = 0; i < n; ++i) {
            d[i] = free_var[i] ? -q[i] : 0.0;
            if ((x[i] <= lower[i] && d[i] < 0) || (x[i] >= upper[i] && d[i] > 0)) d[i] = 0.0;
        }
        double dphi0 = dot(g, d);
        if (!steepest && !(dphi0 < 0)) {  // not a descent direction: forget the memory
            pairs.clear();
            steepest = true;
        }
        if (steepest) {
            for (std::size_t i = 0; i < n; ++i) {
                d[i] = free_var[i] ? -g[i] : 0.0;
                if ((x[i] <= lower[i] && d[i] < 0) || (x[i] >= upper[i] && d[i] > 0)) d[i] = 0.0;
            }
            dphi0 = dot(g, d);
        }
        if (!(dphi0 < 0))  // nothing can move downhill: the projected gradient is zero
            return finish("CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL", true);

        // 3. line search on the projected path
        const double dnorm = std::sqrt(dot(d, d));
        double a = steepest ? std::min(1.0, 1.0 / dnorm) : 1.0;
        double lo = 0.0, hi = HUGE_VAL, f_lo = f, dphi_lo = dphi0;
        bool have_best = false, accepted = false;
        double fbest = f;
        for (int ls = 0; ls < opt.max_line_search; ++ls) {
            if (res.evaluations >= opt.max_evaluations) break;
            bool clipped = false, moved = false;
            double decrease = 0.0;
            for (std::size_t i = 0; i < n; ++i) {
                const double free_x = x[i] + a * d[i];
                xt[i] = std::min(std::max(free_x, lower[i]), upper[i]);
                if (xt[i] != free_x) clipped = true;
                if (xt[i] != x[i]) moved = true;
                decrease += g[i] * (xt[i] - x[i]);
            }
            if (!moved) break;  // the step is below the resolution of x
            const double ft = fun(xt, gt);
            ++res.evaluations;
            const bool ok = std::isfinite(ft) && all_finite(gt) && decrease < 0 && ft <= f + kC1 * decrease;
            if (!ok) {
                hi = a;
                a = std::isfinite(ft) ? safeguarded_quadratic(lo, f_lo, dphi_lo, hi, ft) : lo + 0.1 * (hi - lo);
                continue;
            }
            const double dphi = dot(gt, d);
            if (clipped || dphi >= kC2 * dphi0) {  // accepted
                accepted = true;
                have_best = false;
                xbest.swap(xt);
                gbest.swap(gt);
                fbest = ft;
                break;
            }
            // sufficient decrease but still steeply downhill: a longer step
            have_best = true;
            xbest = xt;
            gbest = gt;
            fbest = ft;
            lo = a;
            f_lo = ft;
            dphi_lo = dphi;
            if (hi == HUGE_VAL) a *= kExtrapolate;
            else a = lo + 0.5 * (hi - lo);
        }
        if (have_best) accepted = true;  // the longest step with sufficient decrease
        if (!accepted) {
            if (res.evaluations >= opt.max_evaluations)
                return finish("STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT", false);
            if (!steepest && !steepest_retry) {  // retry once along the steepest descent
                pairs.clear();
                steepest_retry = true;
                continue;
            }
            return finish("ABNORMAL: THE LINE SEARCH FOUND NO DECREASE", false);
        }
        steepest_retry = false;

        // 4. the new iterate and the pair
        Pair p;
        p.s.resize(n);
        p.y.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            p.s[i] = xbest[i] - x[i];
            p.y[i] = gbest[i] - g[i];
        }
        const double f_old = f;
        x.swap(xbest);
        g.swap(gbest);
        f = fbest;
        ++res.iterations;
        const double sy = dot(p.s, p.y), yy = dot(p.y, p.y);
        if (sy > kEps * yy) {
            pairs.push_back(std::move(p));
            if (int(pairs.size()) > opt.memory) pairs.pop_front();
        }
        if (callback && !callback(res.iterations, x, f)) {
            res.cancelled = true;
            return finish("STOP: CANCELLED BY THE CALLBACK", false);
        }
        if (projected_gradient_norm(x, g, lower, upper) <= opt.gtol)
            return finish("CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL", true);
        if ((f_old - f) <= opt.ftol * std::max({std::abs(f_old), std::abs(f), 1.0}))
            return finish("CONVERGENCE: REL_REDUCTION_OF_F <= FTOL", true);
        if (res.evaluations >= opt.max_evaluations)
            return finish("STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT", false);
    }
    return finish("STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", false);
}

}  // namespace aet
