// A limited-memory BFGS minimiser with simple bounds l <= x <= u (projected L-BFGS, in the spirit of
// L-BFGS-B; written for the atom refinement, usable for any smooth objective with a gradient).
//
// Every iteration, from a feasible x with gradient g:
//  1. the active set: the variables at a bound whose gradient pushes them outward
//     (x_i = l_i and g_i > 0, or x_i = u_i and g_i < 0); the others are free;
//  2. the direction on the free variables, d_F = -H_F g_F, by the two-loop recursion over the stored
//     pairs (s, y) restricted to the free variables (a pair is used when s_F.y_F > eps y_F.y_F;
//     H0 = gamma I with gamma = s_F.y_F / y_F.y_F of the newest pair used); d = 0 on the active set,
//     and a free variable at its bound does not move outward. Without a usable pair, or when d is not
//     a descent direction, d = -g_F and the first trial step is min(1, 1 / |d|_2);
//  3. a line search on the projected path x(a) = P(x + a d) (P clips into the box): sufficient
//     decrease f(x(a)) <= f(x) + c1 g.(x(a) - x) with c1 = 1e-3; while the path has not touched a
//     bound it also asks for the curvature condition g(x(a)).d >= c2 g.d (c2 = 0.9), extrapolating
//     by 4x while the step is too short and interpolating (safeguarded quadratic) while it is too
//     long, at most `max_line_search` evaluations. Once the path is clipped, many variables may
//     become active in one iteration. A failed search clears the memory and retries along -g once;
//  4. the pair (x_{k+1} - x_k, g_{k+1} - g_k) is stored (at most `memory`, the oldest dropped) when
//     s.y > eps y.y (eps the machine epsilon).
// It stops, like scipy's L-BFGS-B, when (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol, when the
// projected gradient max_i |P(x - g)_i - x_i| <= gtol (also checked at the start), after
// max_iterations iterations or max_evaluations evaluations, when the line search fails twice, or
// when the callback returns false. The returned x is feasible.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace aet {

struct BoundedLbfgsOptions {
    int max_iterations = 100;
    int memory = 10;              // stored pairs (s, y)
    double ftol = 2.2e-9;         // relative reduction of f (scipy's factr 1e7 x machine epsilon)
    double gtol = 1e-5;           // infinity norm of the projected gradient
    int max_evaluations = 15000;  // objective evaluations in all
    int max_line_search = 20;     // evaluations per line search
};

// f(x), with the gradient written into grad (already sized like x).
using BoundedObjective = std::function<double(const std::vector<double>& x, std::vector<double>& grad)>;
// Called after every iteration with its number (1, 2, ...), x and f; false stops the minimisation.
using BoundedIterationCallback = std::function<bool(int iteration, const std::vector<double>& x, double f)>;

struct BoundedLbfgsResult {
    std::vector<double> x;     // the last accepted iterate (feasible)
    double f = 0.0;            // f(x)
    std::vector<double> grad;  // the gradient at x
    double projected_gradient = 0.0;  // max_i |P(x - g)_i - x_i|
    int iterations = 0;
    int evaluations = 0;
    bool converged = false;    // by ftol or gtol
    bool cancelled = false;    // the callback returned false
    std::string message;       // why it stopped
};

// Minimise fun over lower <= x <= upper from x0 (projected into the box first). Bounds may be
// -inf/+inf. Throws std::invalid_argument naming "x0", "lower", "upper" or the option ("memory",
// "max_iterations", "ftol", "gtol", "max_evaluations", "max_line_search") when an argument is out of
// range (sizes differ, NaN, lower > upper), and naming "x0" when f or its gradient is not finite
// there. Exceptions thrown by fun propagate.
BoundedLbfgsResult minimize_bounded_lbfgs(const BoundedObjective& fun, std::vector<double> x0,
                                          const std::vector<double>& lower, const std::vector<double>& upper,
                                          const BoundedLbfgsOptions& opt = BoundedLbfgsOptions(),
                                          const BoundedIterationCallback& callback = BoundedIterationCallback());

}  // namespace aet
