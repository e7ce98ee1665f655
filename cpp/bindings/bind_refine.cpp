#include <cmath>
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
              require_positive(pixel_size, "pixel_size");
              require_positive(blur, "blur", true);
              require_positive(cutoff, "cutoff");
              require_finite(positions.data(), positions.size(), "positions");
              require_finite(heights.data(), heights.size(), "heights");
              require_finite(b_factors.data(), b_factors.size(), "b_factors");
              if (std::isnan(scale) || std::isinf(scale)) throw py::value_error("scale: expected a finite number");
              AtomSet a;
              a.positions = positions.data();
              a.species = species.data();
              a.n = positions.shape(0);
              a.heights.assign(heights.data(), heights.data() + heights.shape(0));
              a.cutoff = cutoff;
              const index_t ns = heights.shape(0);
              for (index_t q = 0; q < ns; ++q) {
                  const double s2 = b_factors.data()[q] / (8.0 * M_PI * M_PI * pixel_size * pixel_size) +
                                    (blur / pixel_size) * (blur / pixel_size);
                  if (!(s2 > 0)) throw py::value_error("b_factors/blur: every atom needs a positive width");
                  const double sig = std::sqrt(s2);
                  if (!std::isfinite(heights.data()[q] * std::pow(2.0 * M_PI, 1.5) * sig * sig * sig) ||
                      !std::isfinite(cutoff * sig))
                      throw py::value_error("b_factors/blur: the width of species " + std::to_string(q) +
                                            " overflows the atom's amplitude or window");
                  a.sigmas.push_back(sig);
              }
              for (index_t i = 0; i < a.n; ++i)
                  if (a.species[i] < 0 || a.species[i] >= ns)
                      throw py::value_error("species: index " + std::to_string(a.species[i]) + " of atom " +
                                            std::to_string(i) + " is outside 0.." + std::to_string(ns - 1));
              auto rots = rotations_from(angles_rad);
              const int nt = resolve_threads(threads);
              const index_t ndy = measured.shape(1), ndx = measured.shape(2);
              check_memory(8.0 * double(measured.size()) +
                               8.0 * nt * (double(want_grad) * (3.0 * a.n + 2.0 * ns) + double(want_jtj) * 6.0 * a.n) +
                               8.0 * (9.0 * a.n + 4.0 * ns),
                           "the refinement objective");
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
              }
              return d;
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("b_factors"), py::arg("blur"),
          py::arg("pixel_size"), py::arg("angles_rad"), py::arg("tilts"), py::arg("scale") = 0.0,
          py::arg("cutoff") = 5.0, py::arg("want_grad") = true, py::arg("want_jtj") = false,
          py::arg("threads") = 0,
          "Loss sum (s P - b)^2 / 2 of Gaussian atoms against a tilt series, sum |s P - b|, and gradients.\n"
          "positions in voxels, b_factors in Å^2, blur and pixel_size in Å; scale <= 0 = closed form.\n"
          "grad_positions per voxel; jtj = per-atom (xx, xy, xz, yy, yz, zz) of sum dP/dr dP/dr^T (voxels);\n"
          "jtrrj = the same with each pixel weighted by its squared residual (s P - b)^2.");
}

}  // namespace aet::bind
