#include <algorithm>
#include <cmath>
#include "bindings.hpp"
#include <aetcore/trace.hpp>

namespace aet::bind {

void register_trace(py::module_& m) {
    m.def("local_maxima",
          [](const carray<float>& vol, double threshold, int threads) {
              require_shape(vol, "volume", {-1, -1, -1});
              resolve_threads(threads);
              Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              TraceOptions o;
              o.threshold = threshold;
              validate(o);
              std::vector<Peak> peaks;
              {
                  py::gil_scoped_release nogil;
                  peaks = find_local_maxima(vol.data(), s, float(resolve_threshold(vol.data(), s, o)), threads);
              }
              const py::ssize_t n = py::ssize_t(peaks.size());
              carray<std::int64_t> idx({n, py::ssize_t(3)});
              carray<float> val({n});
              auto* pi = idx.mutable_data();
              auto* pv = val.mutable_data();
              for (py::ssize_t k = 0; k < n; ++k) {
                  const index_t i = peaks[std::size_t(k)].index;
                  pi[3 * k] = i / (s.ny * s.nx);
                  pi[3 * k + 1] = (i / s.nx) % s.ny;
                  pi[3 * k + 2] = i % s.nx;
                  pv[k] = peaks[std::size_t(k)].value;
              }
              return py::make_tuple(idx, val);
          },
          py::arg("volume"), py::arg("threshold") = TraceOptions().threshold, py::arg("threads") = 0,
          "Local maxima (26-neighbourhood, one per plateau) above threshold (NaN: TraceOptions' automatic "
          "threshold), brightest first: "
          "((n, 3) int64 (z, y, x), (n,) float32 values).");
    py::class_<TraceOptions>(m, "TraceOptions",
                             "Every option of atom tracing with its default (aetcore/trace.hpp): the one home of the "
                             "defaults of aetcore.trace_atoms and of the [trace] section of `aet config`.")
        .def(py::init<>())
        .def_readwrite("threshold", &TraceOptions::threshold, "volume units; NaN: threshold_fraction x max")
        .def_readwrite("threshold_fraction", &TraceOptions::threshold_fraction, "automatic threshold / maximum")
        .def_readwrite("max_atoms", &TraceOptions::max_atoms, "at most this many atoms (0: no cap)")
        .def_readwrite("pixel_size", &TraceOptions::pixel_size, "Å per voxel")
        .def_readwrite("min_distance", &TraceOptions::min_distance, "minimum distance between atoms, Å")
        .def_readwrite("fit", &TraceOptions::fit, "0 none, 1 polynomial, 2 Gaussian")
        .def_readwrite("max_drift", &TraceOptions::max_drift, "largest move of a fit from its voxel maximum, voxels")
        .def_readwrite("fit_radius", &TraceOptions::fit_radius, "fit window half-width, voxels")
        .def_readwrite("max_iterations", &TraceOptions::max_iterations, "Newton steps per fit")
        .def_readwrite("threads", &TraceOptions::threads, "OpenMP threads; <= 0: every core")
        .def("validate", [](const TraceOptions& o) { validate(o); },
             "Raise ValueError naming the first option out of its range.");
    const TraceOptions D;
    m.def("trace_atoms",
          [](const carray<float>& vol, double threshold, index_t max_atoms, double min_distance, int fit,
             double max_drift, int fit_radius, int threads, int max_iterations, double pixel_size) {
              require_shape(vol, "volume", {-1, -1, -1});
              TraceOptions opt;  // every option, the volume and the memory are checked by the core
              opt.threshold = threshold;
              opt.max_atoms = max_atoms;
              opt.min_distance = min_distance;
              opt.fit = fit;
              opt.max_drift = max_drift;
              opt.fit_radius = fit_radius;
              opt.threads = threads;
              opt.max_iterations = max_iterations;
              opt.pixel_size = pixel_size;
              Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              TraceResult r;
              {
                  py::gil_scoped_release nogil;
                  r = trace_atoms(vol.data(), s, opt);
              }
              const py::ssize_t n = py::ssize_t(r.size());
              carray<std::int64_t> vox({n, py::ssize_t(3)});
              carray<double> pos({n, py::ssize_t(3)});
              carray<float> inten({n});
              carray<std::int8_t> status({n});
              std::copy(r.voxel.begin(), r.voxel.end(), vox.mutable_data());
              std::copy(r.position.begin(), r.position.end(), pos.mutable_data());
              std::copy(r.intensity.begin(), r.intensity.end(), inten.mutable_data());
              std::copy(r.status.begin(), r.status.end(), status.mutable_data());
              return py::make_tuple(vox, pos, inten, status);
          },
          py::arg("volume"), py::arg("threshold") = D.threshold, py::arg("max_atoms") = D.max_atoms,
          py::arg("min_distance") = D.min_distance, py::arg("fit") = D.fit, py::arg("max_drift") = D.max_drift,
          py::arg("fit_radius") = D.fit_radius, py::arg("threads") = D.threads,
          py::arg("max_iterations") = D.max_iterations, py::arg("pixel_size") = D.pixel_size,
          "Trace atoms: ((n,3) int64 voxel (z,y,x), (n,3) float64 position (z,y,x) in voxels, (n,) float32 "
          "intensity, (n,) int8 status); fit 0 none, 1 polynomial, 2 Gaussian; threshold NaN: automatic; "
          "min_distance in Å (pixel_size Å per voxel), max_drift and fit_radius in voxels (aet::TraceOptions).");
}

}  // namespace aet::bind
