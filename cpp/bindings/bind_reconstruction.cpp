#include <algorithm>
#include <cmath>
#include <complex>
#include <memory>
#include <utility>
#include "bindings.hpp"
#include <aetcore/fft_plans.hpp>
#include <aetcore/genfire.hpp>
#include <aetcore/gridding.hpp>

namespace aet::bind {

void register_reconstruction(py::module_& m) {
    // n_grid: an int (the cubic grid n_grid^3) or (Nz, Ny, Nx).
    auto grid_of = [](const py::object& n_grid) {
        if (py::isinstance<py::sequence>(n_grid) && !py::isinstance<py::str>(n_grid)) {
            auto seq = n_grid.cast<py::sequence>();
            if (seq.size() != 3)
                throw py::value_error("n_grid: expected an int or (Nz, Ny, Nx), got " + std::to_string(seq.size()) +
                                      " values");
            return Shape3{seq[0].cast<index_t>(), seq[1].cast<index_t>(), seq[2].cast<index_t>()};
        }
        const index_t n = n_grid.cast<index_t>();
        return Shape3{n, n, n};
    };
    m.def("grid_projections",
          [grid_of](const carray<float>& tilts, const carray<double>& angles_rad, py::object n_grid, double radius,
                    int upsample, int threads) {
              require_shape(tilts, "tilts", {angles_rad.shape(0), -1, -1});
              // radius, upsample, the image and grid sizes are checked by the core (grid_projections)
              const Shape3 grid = grid_of(n_grid);
              auto rots = rotations_from(angles_rad);
              GriddingOptions opt;
              opt.radius = radius;
              opt.upsample = upsample;
              opt.threads = threads;
              GriddedData g;
              const float* t = tilts.data();
              const index_t K = tilts.shape(0), ny = tilts.shape(1), nx = tilts.shape(2);
              {
                  py::gil_scoped_release nogil;
                  g = grid_projections(t, K, ny, nx, rots, grid, opt);
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
          py::arg("tilts"), py::arg("angles_rad"), py::arg("n_grid"), py::arg("radius") = GriddingOptions().radius,
          py::arg("upsample") = GriddingOptions().upsample, py::arg("threads") = 0,
          "Grid projections into the half spectrum of an n_grid^3 grid (n_grid an int) or of an Nz x Ny x Nx "
          "grid (n_grid = (Nz, Ny, Nx)): (index, value, weight, |k| in steps of the finest axis).");

    py::class_<GenfirePlan>(m, "GenfirePlan")
        .def(py::init([grid_of](py::object n_grid, index_t bz, index_t by, index_t bx, int threads) {
                 const Shape3 grid = grid_of(n_grid);
                 py::gil_scoped_release nogil;
                 return new GenfirePlan(grid, Shape3{bz, by, bx}, threads);
             }),
             py::arg("n_grid"), py::arg("bz"), py::arg("by"), py::arg("bx"), py::arg("threads") = 0,
             "n_grid: an int (the cubic grid n_grid^3) or (Nz, Ny, Nx).")
        .def_property_readonly("n_grid", &GenfirePlan::n_grid, "the largest grid side")
        .def_property_readonly("grid_shape", [](const GenfirePlan& p) {
            const Shape3 g = p.grid();
            return py::make_tuple(g.nz, g.ny, g.nx);
        }, "(Nz, Ny, Nx)")
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
                 // indices and n_enforce are checked by the core (GenfirePlan::iterate)
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
                 const Shape3 g = p.grid();
                 {
                     py::gil_scoped_release nogil;
                     p.forward(box.data());
                 }
                 carray<std::complex<float>> out({py::ssize_t(g.nz), py::ssize_t(g.ny), py::ssize_t(g.nx / 2 + 1)});
                 std::copy(p.spectrum(), p.spectrum() + g.nz * g.ny * (g.nx / 2 + 1), out.mutable_data());
                 return out;
             },
             py::arg("box"), "The half spectrum of the box placed at the grid origin (for tests).")
        .def("inverse_spectrum",
             [](GenfirePlan& p, const carray<std::complex<float>>& spec) {
                 const Shape3 b = p.box();
                 const Shape3 g = p.grid();
                 require_shape(spec, "spectrum", {g.nz, g.ny, g.nx / 2 + 1});
                 std::copy(reinterpret_cast<const cfloat*>(spec.data()),
                           reinterpret_cast<const cfloat*>(spec.data()) + g.nz * g.ny * (g.nx / 2 + 1), p.spectrum());
                 carray<float> out({py::ssize_t(b.nz), py::ssize_t(b.ny), py::ssize_t(b.nx)});
                 float* o = out.mutable_data();
                 {
                     py::gil_scoped_release nogil;
                     p.inverse(o);
                 }
                 return out;
             },
             py::arg("spectrum"), "The box part of the inverse transform / (Nz Ny Nx) (for tests).");

    py::class_<GenfireOptions>(m, "GenfireOptions",
                               "Every option of GENFIRE with its default (aetcore/genfire.hpp): the one home of the "
                               "defaults of aetcore.genfire and of the [reconstruct] section of `aet config`.")
        .def(py::init<>())
        .def_readwrite("oversampling", &GenfireOptions::oversampling, "Fourier grid side / volume side (>= 1)")
        .def_readwrite("iterations", &GenfireOptions::iterations, "maximum number of iterations")
        .def_readwrite("positivity", &GenfireOptions::positivity, "clip negative voxels every iteration")
        .def_readwrite("interpolation_radius", &GenfireOptions::interpolation_radius, "gridding radius, grid steps")
        .def_readwrite("plane_upsampling", &GenfireOptions::plane_upsampling, "extra zero-padding of the images (1..8)")
        .def_readwrite("extension", &GenfireOptions::extension, "fraction of the iterations of resolution extension")
        .def_readwrite("momentum", &GenfireOptions::momentum, "momentum, in [0, 1)")
        .def_readwrite("rfree_fraction", &GenfireOptions::rfree_fraction, "fraction held out for R-free, [0, 0.5)")
        .def_readwrite("patience", &GenfireOptions::patience, "early stop after this many iterations without improvement")
        .def_readwrite("tol", &GenfireOptions::tol, "relative improvement that counts for patience")
        .def_readwrite("seed", &GenfireOptions::seed, "seed of the R-free draw (std::mt19937_64)")
        .def_readwrite("threads", &GenfireOptions::threads, "OpenMP threads; <= 0: every core")
        .def_readwrite("support_iterations", &GenfireOptions::support_iterations,
                       "iterations of the low-resolution pass of the automatic support")
        .def_readwrite("support_frequency", &GenfireOptions::support_frequency,
                       "the low-resolution pass enforces |k| up to this fraction of the largest")
        .def_readwrite("support_margin", &GenfireOptions::support_margin, "automatic support: dilation, Å")
        .def_readwrite("half_set_iterations", &GenfireOptions::half_set_iterations,
                       "maximum iterations of each half-set reconstruction of the FSC")
        .def_readwrite("half_set_oversampling", &GenfireOptions::half_set_oversampling,
                       "oversampling of the half-set reconstructions of an object inside the field of view")
        .def("validate", [](const GenfireOptions& o) { validate(o); },
             "Raise ValueError naming the first option out of its range.")
        .def("__repr__", [](const GenfireOptions& o) {
            return "GenfireOptions(oversampling=" + std::to_string(o.oversampling) +
                   ", iterations=" + std::to_string(o.iterations) + ", seed=" + std::to_string(o.seed) + ", ...)";
        });

    m.def("genfire_grid_size", &genfire_grid_size, py::arg("n"), py::arg("oversampling"),
          "The oversampled Fourier grid side for a volume of largest side n: ceil(oversampling n) rounded up "
          "to an even 7-smooth number.");
    m.def("genfire_grid_shape",
          [](index_t nz, index_t ny, index_t nx, double oversampling) {
              const Shape3 g = genfire_grid_shape(Shape3{nz, ny, nx}, oversampling);
              return py::make_tuple(g.nz, g.ny, g.nx);
          },
          py::arg("nz"), py::arg("ny"), py::arg("nx"), py::arg("oversampling"),
          "The oversampled Fourier grid (Nz, Ny, Nx) of a box (nz, ny, nx): genfire_grid_size of each side.");
    m.def("genfire_memory_bytes",
          [](index_t K, index_t ny, index_t nx, index_t bz, index_t by, index_t bx, const GenfireOptions& opt) {
              return genfire_memory_bytes(K, ny, nx, Shape3{bz, by, bx}, opt);
          },
          py::arg("n_images"), py::arg("ny"), py::arg("nx"), py::arg("nz_box"), py::arg("ny_box"), py::arg("nx_box"),
          py::arg("options"),
          "Bytes GENFIRE needs for n_images of ny x nx into a box (nz_box, ny_box, nx_box) with these options "
          "(the estimate aet::Genfire checks before it allocates).");
    m.def("next_smooth", &next_smooth, py::arg("n"), py::arg("even_only") = false,
          "The smallest 7-smooth number (2^a 3^b 5^c 7^d) >= n (even if asked).");
    m.def("genfire_rfree_split",
          [](index_t n, double fraction, std::uint64_t seed) {
              if (n < 0) throw py::value_error("n: expected >= 0, got " + std::to_string(n));
              if (!(fraction >= 0 && fraction < 0.5)) throw py::value_error("rfree_fraction: expected [0, 0.5)");
              auto f = genfire_rfree_split(n, fraction, seed);
              carray<bool> out(py::ssize_t(f.size()));
              std::copy(f.begin(), f.end(), out.mutable_data());
              return out;
          },
          py::arg("n"), py::arg("fraction"), py::arg("seed"),
          "The held-out mask of GENFIRE's R-free split of n points (std::mt19937_64(seed), partial Fisher-Yates).");

    m.def("genfire_memory_bytes",
          [](index_t K, index_t ny, index_t nx, index_t vz, index_t vy, index_t vx, const GenfireOptions& opt) {
              return genfire_memory_bytes(K, ny, nx, Shape3{vz, vy, vx}, opt);
          },
          py::arg("n_images"), py::arg("ny"), py::arg("nx"), py::arg("vz"), py::arg("vy"), py::arg("vx"),
          py::arg("options"),
          "Bytes a GENFIRE reconstruction of n_images ny x nx images into a (vz, vy, vx) box needs with these "
          "options (the estimate Genfire checks before it allocates).");

    py::class_<Genfire>(m, "Genfire",
                        "A GENFIRE reconstruction: the constructor grids the projections, splits R-free and plans "
                        "the FFTs once; low_resolution() and run() iterate (aetcore/genfire.hpp).")
        .def(py::init([](const carray<float>& tilts, const carray<double>& euler_rad, index_t nz, index_t ny,
                         index_t nx, const GenfireOptions& opt) {
                 require_shape(tilts, "tilts", {-1, -1, -1});
                 require_shape(euler_rad, "angles", {tilts.shape(0), 3});
                 const Shape3 s{nz, ny, nx};  // options, sizes, values and memory: checked by the core
                 const float* t = tilts.data();
                 const double* e = euler_rad.data();
                 const index_t K = tilts.shape(0), iy = tilts.shape(1), ix = tilts.shape(2);
                 py::gil_scoped_release nogil;
                 return new Genfire(t, K, iy, ix, e, s, opt);
             }),
             py::arg("tilts"), py::arg("euler_rad"), py::arg("nz"), py::arg("ny"), py::arg("nx"), py::arg("options"))
        .def_property_readonly("grid_size", &Genfire::grid_size, "the largest side of the oversampled grid")
        .def_property_readonly("grid_shape", [](const Genfire& g) {
            const Shape3 s = g.grid_shape();
            return py::make_tuple(s.nz, s.ny, s.nx);
        }, "the oversampled grid (Nz, Ny, Nx)")
        .def_property_readonly("measured_points", &Genfire::measured_points)
        .def_property_readonly("free_points", &Genfire::free_points)
        .def_property_readonly("seconds_gridding", &Genfire::seconds_gridding)
        .def_property_readonly("seconds_planning", &Genfire::seconds_planning)
        .def_property_readonly("options", &Genfire::options)
        .def("low_resolution",
             [](Genfire& g) {
                 std::vector<float> v;
                 {
                     py::gil_scoped_release nogil;
                     v = g.low_resolution();
                 }
                 const Shape3 s = g.shape();
                 carray<float> out({py::ssize_t(s.nz), py::ssize_t(s.ny), py::ssize_t(s.nx)});
                 std::copy(v.begin(), v.end(), out.mutable_data());
                 return out;
             },
             "The low-resolution pass of the automatic support (whole box as support).")
        .def("run",
             [](Genfire& g, py::object support, py::object initial, py::object callback) {
                 const Shape3 s = g.shape();
                 carray<std::uint8_t> sup_arr;
                 carray<float> init_arr;
                 const std::uint8_t* sup = nullptr;
                 const float* init = nullptr;
                 if (!support.is_none()) {
                     sup_arr = support.cast<carray<std::uint8_t>>();
                     require_shape(sup_arr, "support", {s.nz, s.ny, s.nx});
                     sup = sup_arr.data();
                 }
                 if (!initial.is_none()) {
                     init_arr = initial.cast<carray<float>>();
                     require_shape(init_arr, "initial", {s.nz, s.ny, s.nx});
                     init = init_arr.data();
                 }
                 // The callback runs with the GIL re-acquired; a Python exception (or Ctrl-C) stops the
                 // iteration and is raised again once the GIL is back.
                 std::unique_ptr<py::error_already_set> failure;
                 GenfireProgress progress;
                 if (!callback.is_none()) {
                     progress = [&](int it, double err, double rf) {
                         py::gil_scoped_acquire gil;
                         try {
                             py::object r = callback(it, err, rf);
                             if (PyErr_CheckSignals() != 0) throw py::error_already_set();
                             return r.is_none() || r.cast<bool>();
                         } catch (py::error_already_set& e) {
                             failure = std::make_unique<py::error_already_set>(std::move(e));
                             return false;
                         }
                     };
                 }
                 GenfireResult r;
                 {
                     py::gil_scoped_release nogil;
                     r = g.run(sup, init, progress);
                 }
                 if (failure) throw std::move(*failure);
                 carray<float> vol({py::ssize_t(s.nz), py::ssize_t(s.ny), py::ssize_t(s.nx)});
                 std::copy(r.volume.begin(), r.volume.end(), vol.mutable_data());
                 carray<double> errors(py::ssize_t(r.errors.size())), rfree(py::ssize_t(r.rfree.size()));
                 std::copy(r.errors.begin(), r.errors.end(), errors.mutable_data());
                 std::copy(r.rfree.begin(), r.rfree.end(), rfree.mutable_data());
                 py::dict d;
                 d["volume"] = vol;
                 d["errors"] = errors;
                 d["rfree"] = rfree;
                 d["grid_size"] = r.grid_size;
                 d["grid_shape"] = py::make_tuple(r.grid_shape.nz, r.grid_shape.ny, r.grid_shape.nx);
                 d["measured_points"] = r.measured_points;
                 d["free_points"] = r.free_points;
                 d["cancelled"] = r.cancelled;
                 d["seconds_iterations"] = r.seconds_iterations;
                 return d;
             },
             py::arg("support") = py::none(), py::arg("initial") = py::none(), py::arg("callback") = py::none(),
             "Iterate: support (bool/uint8 mask) or None for the whole box; initial volume or None for zeros; "
             "callback(iteration, error, rfree) -> None/True to go on, False to stop. Returns a dict.");

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
