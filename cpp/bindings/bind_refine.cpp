#include <cmath>
#include <memory>
#include "bindings.hpp"
#include <aetcore/refine.hpp>

namespace aet::bind {

namespace {

template <class T>
carray<double> to_array(const std::vector<double>& v, std::vector<py::ssize_t> shape) {
    carray<double> a(shape);
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

}  // namespace

void register_refine(py::module_& m) {
    py::class_<RefineOptions>(m, "RefineOptions",
                              "Every option of the refinement with its default (aetcore/refine.hpp): the one home of "
                              "the defaults of aetcore.steps.refine.refine and of the [refine] section of `aet config`.")
        .def(py::init<>())
        .def_readwrite("max_shift", &RefineOptions::max_shift, "largest move per coordinate, Å")
        .def_readwrite("refine_positions", &RefineOptions::refine_positions)
        .def_readwrite("refine_heights", &RefineOptions::refine_heights)
        .def_readwrite("refine_b", &RefineOptions::refine_b)
        .def_readwrite("iterations", &RefineOptions::iterations, "largest number of L-BFGS iterations")
        .def_readwrite("cutoff", &RefineOptions::cutoff, "Gaussian cut-off, sigmas")
        .def_readwrite("precondition", &RefineOptions::precondition,
                       "scale the position offsets by their Gauss-Newton curvature at the start")
        .def_readwrite("precision", &RefineOptions::precision, "'sandwich' or 'curvature'")
        .def_readwrite("refine_angles", &RefineOptions::refine_angles)
        .def_readwrite("angle_range", &RefineOptions::angle_range, "degrees per round")
        .def_readwrite("angle_rounds", &RefineOptions::angle_rounds)
        .def_readwrite("b_min", &RefineOptions::b_min, "lower bound of B, Å^2")
        .def_readwrite("b_max", &RefineOptions::b_max, "upper bound of B, Å^2")
        .def_readwrite("height_min", &RefineOptions::height_min, "lower bound of H / H_0")
        .def_readwrite("lbfgs_memory", &RefineOptions::lbfgs_memory, "stored pairs (s, y) of the bounded L-BFGS")
        .def_readwrite("lbfgs_ftol", &RefineOptions::lbfgs_ftol, "stop when (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol")
        .def_readwrite("lbfgs_gtol", &RefineOptions::lbfgs_gtol, "stop when the projected gradient's largest entry <= gtol")
        .def_readwrite("threads", &RefineOptions::threads)
        .def("validate", [](const RefineOptions& o) { validate(o); },
             "Raise ValueError naming the first option out of its range.");
    m.def("refine_objective",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& b_factors, double blur, double pixel_size, const carray<double>& angles_rad,
             const carray<float>& measured, double scale, double cutoff, bool want_grad, bool want_jtj,
             int threads) {
              require_shape(positions, "positions", {-1, 3});
              require_shape(species, "species", {positions.shape(0)});
              require_shape(heights, "heights", {-1});
              require_shape(b_factors, "b_factors", {heights.shape(0)});
              require_shape(measured, "tilts", {angles_rad.shape(0), -1, -1});
              // values, sizes and memory are checked by the core (sigma_from_b, validate_atoms, refine_objective)
              AtomSet a;
              a.positions = positions.data();
              a.species = species.data();
              a.n = positions.shape(0);
              a.heights.assign(heights.data(), heights.data() + heights.shape(0));
              a.cutoff = cutoff;
              const index_t ns = heights.shape(0);
              for (index_t q = 0; q < ns; ++q) a.sigmas.push_back(sigma_from_b(b_factors.data()[q], blur, pixel_size));
              auto rots = rotations_from(angles_rad);
              const index_t ndy = measured.shape(1), ndx = measured.shape(2);
              RefineEval r;
              {
                  py::gil_scoped_release nogil;
                  r = refine_objective(a, rots, ndy, ndx, measured.data(), scale, pixel_size, want_grad,
                                       want_jtj, threads);
              }
              py::dict d;
              d["loss"] = r.loss;
              d["abs_residual"] = r.abs_residual;
              d["scale"] = r.scale;
              d["pb"] = r.pb;
              d["pp"] = r.pp;
              d["sigmas"] = to_array<double>(a.sigmas, {py::ssize_t(ns)});
              if (want_grad) {
                  d["grad_positions"] = to_array<double>(r.grad_pos, {py::ssize_t(a.n), 3});
                  d["grad_heights"] = to_array<double>(r.grad_height, {py::ssize_t(ns)});
                  d["grad_sigmas"] = to_array<double>(r.grad_sigma, {py::ssize_t(ns)});
                  d["grad_b_factors"] = to_array<double>(r.grad_b, {py::ssize_t(ns)});
              }
              if (want_jtj) {
                  d["jtj"] = to_array<double>(r.jtj, {py::ssize_t(a.n), 6});
                  d["jtrrj"] = to_array<double>(r.jtrrj, {py::ssize_t(a.n), 6});
                  d["rhess"] = to_array<double>(r.rhess, {py::ssize_t(a.n), 6});
                  d["gn_heights"] = to_array<double>(r.gn_height, {py::ssize_t(ns)});
                  d["gn_sigmas"] = to_array<double>(r.gn_sigma, {py::ssize_t(ns)});
              }
              return d;
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("b_factors"), py::arg("blur"),
          py::arg("pixel_size"), py::arg("angles_rad"), py::arg("tilts"), py::arg("scale") = 0.0,
          py::arg("cutoff") = RefineOptions().cutoff, py::arg("want_grad") = true, py::arg("want_jtj") = false,
          py::arg("threads") = 0,
          "Loss sum (s P - b)^2 / 2 of Gaussian atoms against a tilt series, sum |s P - b|, and gradients.\n"
          "positions in voxels, b_factors in Å^2, blur and pixel_size in Å; scale <= 0 = closed form.\n"
          "grad_positions per voxel; jtj = per-atom (xx, xy, xz, yy, yz, zz) of sum dP/dr dP/dr^T (voxels);\n"
          "jtrrj = the same with each pixel weighted by its squared residual (s P - b)^2;\n"
          "rhess = per-atom sum over pixels of r d2(s P)/dr2 (r = s P - b, voxels), the residual part of the\n"
          "observed Hessian block s^2 jtj + rhess;\n"
          "gn_heights, gn_sigmas = per species sum (dP/dH)^2 and sum (dP/dsigma)^2 (sigma in voxels), the\n"
          "Gauss-Newton diagonals refine_atoms preconditions the heights and B-factors with.");
    m.def("refine_atoms",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& b_factors, double blur, double pixel_size, const carray<double>& angles_rad,
             const carray<float>& measured, double scale, const RefineOptions& options, py::object callback) {
              require_shape(positions, "positions", {-1, 3});
              require_shape(species, "species", {positions.shape(0)});
              require_shape(heights, "heights", {-1});
              require_shape(b_factors, "b_factors", {heights.shape(0)});
              require_shape(measured, "tilts", {angles_rad.shape(0), -1, -1});
              const std::vector<double> h(heights.data(), heights.data() + heights.shape(0));
              const std::vector<double> b(b_factors.data(), b_factors.data() + b_factors.shape(0));
              auto rots = rotations_from(angles_rad);
              const index_t n = positions.shape(0), ndy = measured.shape(1), ndx = measured.shape(2);
              // The callback runs with the GIL re-acquired; a Python exception (or Ctrl-C) stops the
              // refinement and is raised again once the GIL is back.
              std::unique_ptr<py::error_already_set> failure;
              RefineProgress progress;
              if (!callback.is_none()) {
                  progress = [&](int it, double loss) {
                      py::gil_scoped_acquire gil;
                      try {
                          py::object r = callback(it, loss);
                          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
                          return r.is_none() || r.cast<bool>();
                      } catch (py::error_already_set& e) {
                          failure = std::make_unique<py::error_already_set>(std::move(e));
                          return false;
                      }
                  };
              }
              RefineResult r;
              {
                  py::gil_scoped_release nogil;
                  r = refine_atoms(positions.data(), species.data(), n, h, b, blur, rots, ndy, ndx, measured.data(),
                                   pixel_size, scale, options, progress);
              }
              if (failure) throw std::move(*failure);
              const py::ssize_t ns = heights.shape(0);
              py::dict d;
              d["positions"] = to_array<double>(r.positions, {py::ssize_t(n), 3});
              d["heights"] = to_array<double>(r.heights, {ns});
              d["b_factors"] = to_array<double>(r.b_factors, {ns});
              d["scale"] = r.scale;
              d["r1_before"] = r.r1_before;
              d["r1_after"] = r.r1_after;
              d["loss_history"] = to_array<double>(r.loss_history, {py::ssize_t(r.loss_history.size())});
              d["n_iterations"] = r.iterations;
              d["n_evaluations"] = r.evaluations;
              d["precision"] = to_array<double>(r.precision, {py::ssize_t(n), 3});
              d["curvature_ratio"] = to_array<double>(r.curvature_ratio, {py::ssize_t(n)});
              {
                  py::array_t<bool> rel{py::ssize_t(n)};
                  for (index_t i = 0; i < n; ++i) rel.mutable_data()[i] = r.precision_reliable[std::size_t(i)] != 0;
                  d["precision_reliable"] = rel;
              }
              d["noise_sigma"] = r.noise_sigma;
              d["message"] = r.message;
              d["cancelled"] = r.cancelled;
              return d;
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("b_factors"), py::arg("blur"),
          py::arg("pixel_size"), py::arg("angles_rad"), py::arg("tilts"), py::arg("scale") = 0.0,
          py::arg("options") = RefineOptions(), py::arg("callback") = py::none(),
          "The whole refinement (aet::refine_atoms): bounded L-BFGS over positions (Å), heights and B, then\n"
          "scale folding, noise and per-atom precision. positions in Å; scale 0 = closed form;\n"
          "callback(iteration, loss) -> None/True to go on, False to stop. Returns a dict.");
}

}  // namespace aet::bind
