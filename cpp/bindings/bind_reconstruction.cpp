#include <algorithm>
#include <cmath>
#include <complex>
#include <utility>
#include "bindings.hpp"
#include <aetcore/fft_plans.hpp>
#include <aetcore/genfire.hpp>
#include <aetcore/gridding.hpp>

namespace aet::bind {

void register_reconstruction(py::module_& m) {
    m.def("grid_projections",
          [](const carray<float>& tilts, const carray<double>& angles_rad, index_t n_grid, double radius,
             int upsample, int threads) {
              require_shape(tilts, "tilts", {angles_rad.shape(0), -1, -1});
              if (tilts.shape(1) < 1 || tilts.shape(2) < 1)
                  throw py::value_error("tilts: expected non-empty images, got " + std::to_string(tilts.shape(1)) +
                                        " x " + std::to_string(tilts.shape(2)));
              if (n_grid < tilts.shape(1) || n_grid < tilts.shape(2))
                  throw py::value_error("n_grid: the grid must be at least as large as the images");
              require_positive(radius, "radius");
              if (upsample < 1 || upsample > 8) throw py::value_error("upsample: expected 1..8");
              auto rots = rotations_from(angles_rad);
              const int nt = resolve_threads(threads);
              {
                  // Per thread: the padded image and its spectrum. Per projection: at most one record
                  // (16 bytes, twice: per projection and merged) per grid node within `radius` of
                  // its plane; then the merged output (24 bytes a point).
                  const double N = double(n_grid), M = double(upsample) * N, kspan = 2.0 * (N / 2 - 1) + 1;
                  const double depth = std::min(2.0 * std::sqrt(3.0) * radius + 1.0, std::max(kspan, 1.0));
                  const double records = double(rots.size()) * std::max(kspan, 0.0) * std::max(kspan, 0.0) * depth;
                  check_memory(nt * (4.0 * M * M + 8.0 * M * (M / 2 + 1)) + records * (32.0 + 24.0),
                               "gridding the projections on a " + std::to_string(n_grid) + "^3 grid");
              }
              GriddingOptions opt;
              opt.radius = radius;
              opt.upsample = upsample;
              opt.threads = threads;
              GriddedData g;
              const float* t = tilts.data();
              const index_t K = tilts.shape(0), ny = tilts.shape(1), nx = tilts.shape(2);
              {
                  py::gil_scoped_release nogil;
                  g = grid_projections(t, K, ny, nx, rots, n_grid, opt);
              }
              const py::ssize_t n = py::ssize_t(g.index.size());
              carray<std::int64_t> idx(n);
              carray<std::complex<float>> val(n);
              carray<float> w(n), r(n);
              std::copy(g.index.begin(), g.index.end(), idx.mutable_data());
              std::copy(g.value.begin(), g.value.end(), val.mutable_data());
              std::copy(g.weight.begin(), g.weight.end(), w.mutable_data());
              std::copy(g.radius.begin(), g.radius.end(), r.mutable_data());
              return py::make_tuple(idx, val, w, r);
          },
          py::arg("tilts"), py::arg("angles_rad"), py::arg("n_grid"), py::arg("radius") = 0.3,
          py::arg("upsample") = 1, py::arg("threads") = 0,
          "Grid projections into the half spectrum of an n_grid^3 volume: (index, value, weight, |k|).");

    py::class_<GenfirePlan>(m, "GenfirePlan")
        .def(py::init([](index_t n_grid, index_t bz, index_t by, index_t bx, int threads) {
                 if (n_grid < 1) throw py::value_error("n_grid: expected >= 1, got " + std::to_string(n_grid));
                 for (auto [v, name] : {std::pair{bz, "bz"}, std::pair{by, "by"}, std::pair{bx, "bx"}})
                     if (v < 1 || v > n_grid)
                         throw py::value_error(std::string(name) + ": expected a box side in 1.." +
                                               std::to_string(n_grid) + " (n_grid), got " + std::to_string(v));
                 const int nt = resolve_threads(threads);
                 const double N = double(n_grid);
                 check_memory(8.0 * N * N * (N / 2 + 1) + nt * (8.0 * N * 32 + 12.0 * N) + 16.0 * N,
                              "a GENFIRE plan on a " + std::to_string(n_grid) + "^3 grid");
                 py::gil_scoped_release nogil;
                 return new GenfirePlan(n_grid, Shape3{bz, by, bx}, threads);
             }),
             py::arg("n_grid"), py::arg("bz"), py::arg("by"), py::arg("bx"), py::arg("threads") = 0)
        .def_property_readonly("n_grid", &GenfirePlan::n_grid)
        .def_property_readonly("threads", &GenfirePlan::threads)
        .def_property_readonly("nbytes", &GenfirePlan::bytes)
        .def("iterate",
             [](GenfirePlan& p, py::array box_in, py::object support, bool positivity,
                const carray<std::int64_t>& idx, const carray<std::complex<float>>& val, index_t n_enforce,
                const carray<std::int64_t>& free_idx, const carray<std::complex<float>>& free_val) {
                 // The box is updated in place: a converted copy would leave the caller's array
                 // unchanged (a silent wrong answer), so only the exact layout is accepted.
                 if (!py::isinstance<carray<float>>(box_in) || !(box_in.flags() & py::array::c_style) ||
                     !box_in.writeable())
                     throw py::type_error("box: expected a writeable C-contiguous float32 array (updated in "
                                          "place), got dtype " + std::string(py::str(box_in.dtype())));
                 carray<float> box = py::reinterpret_borrow<carray<float>>(box_in);
                 const Shape3 b = p.box();
                 require_shape(box, "box", {b.nz, b.ny, b.nx});
                 require_shape(val, "values", {idx.shape(0)});
                 require_shape(free_val, "free_values", {free_idx.shape(0)});
                 const std::uint8_t* sup = nullptr;
                 carray<std::uint8_t> sup_arr;
                 if (!support.is_none()) {
                     sup_arr = support.cast<carray<std::uint8_t>>();
                     require_shape(sup_arr, "support", {b.nz, b.ny, b.nx});
                     sup = sup_arr.data();
                 }
                 const index_t N = p.n_grid(), limit = N * N * (N / 2 + 1);
                 for (auto* arr : {&idx, &free_idx}) {
                     const std::int64_t* d = arr->data();
                     for (py::ssize_t i = 0; i < arr->shape(0); ++i)
                         if (d[i] < 0 || d[i] >= limit) throw py::value_error("index: outside the half spectrum");
                 }
                 if (n_enforce < 0 || n_enforce > idx.shape(0)) throw py::value_error("n_enforce: out of range");
                 FourierErrors e;
                 float* bp = box.mutable_data();
                 {
                     py::gil_scoped_release nogil;
                     e = p.iterate(bp, sup, positivity, idx.data(),
                                   reinterpret_cast<const cfloat*>(val.data()), idx.shape(0), n_enforce,
                                   free_idx.data(), reinterpret_cast<const cfloat*>(free_val.data()),
                                   free_idx.shape(0));
                 }
                 return py::make_tuple(e.error, e.rfree);
             },
             py::arg("box"), py::arg("support"), py::arg("positivity"), py::arg("index"), py::arg("values"),
             py::arg("n_enforce"), py::arg("free_index"), py::arg("free_values"))
        .def("forward_spectrum",
             [](GenfirePlan& p, const carray<float>& box) {
                 const Shape3 b = p.box();
                 require_shape(box, "box", {b.nz, b.ny, b.nx});
                 const index_t N = p.n_grid();
                 {
                     py::gil_scoped_release nogil;
                     p.forward(box.data());
                 }
                 carray<std::complex<float>> out({py::ssize_t(N), py::ssize_t(N), py::ssize_t(N / 2 + 1)});
                 std::copy(p.spectrum(), p.spectrum() + N * N * (N / 2 + 1), out.mutable_data());
                 return out;
             },
             py::arg("box"), "The half spectrum of the box placed at the grid origin (for tests).")
        .def("inverse_spectrum",
             [](GenfirePlan& p, const carray<std::complex<float>>& spec) {
                 const Shape3 b = p.box();
                 const index_t N = p.n_grid();
                 require_shape(spec, "spectrum", {N, N, N / 2 + 1});
                 std::copy(reinterpret_cast<const cfloat*>(spec.data()),
                           reinterpret_cast<const cfloat*>(spec.data()) + N * N * (N / 2 + 1), p.spectrum());
                 carray<float> out({py::ssize_t(b.nz), py::ssize_t(b.ny), py::ssize_t(b.nx)});
                 float* o = out.mutable_data();
                 {
                     py::gil_scoped_release nogil;
                     p.inverse(o);
                 }
                 return out;
             },
             py::arg("spectrum"), "The box part of the inverse transform / N^3 (for tests).");

    m.def("fft_roundtrip_time",
          [](int n, int threads, int repeats) {
              if (n < 1) throw py::value_error("n: expected >= 1, got " + std::to_string(n));
              if (repeats < 1) throw py::value_error("repeats: expected >= 1, got " + std::to_string(repeats));
              const int nt = resolve_threads(threads);
              const double N = double(n);
              check_memory(4.0 * N * N * N + 8.0 * N * N * (N / 2 + 1), "an FFT timing on a " + std::to_string(n) + "^3 grid");
              py::gil_scoped_release nogil;
              return time_fft_roundtrip_3d(n, nt, repeats);
          },
          py::arg("n"), py::arg("threads") = 0, py::arg("repeats") = 3,
          "Median wall time (s) of one threaded FFTW r2c + c2r of an n^3 grid, planning excluded.");
}

}  // namespace aet::bind
