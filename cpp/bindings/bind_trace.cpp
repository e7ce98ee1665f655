#include <algorithm>
#include <cmath>
#include "bindings.hpp"
#include <aetcore/trace.hpp>

namespace aet::bind {

void register_trace(py::module_& m) {
    m.def("local_maxima",
          [](const carray<float>& vol, float threshold, int threads) {
              require_shape(vol, "volume", {-1, -1, -1});
              if (std::isnan(threshold)) throw py::value_error("threshold: expected a number, got nan");
              resolve_threads(threads);
              Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              std::vector<Peak> peaks;
              {
                  py::gil_scoped_release nogil;
                  peaks = find_local_maxima(vol.data(), s, threshold, threads);
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
          py::arg("volume"), py::arg("threshold"), py::arg("threads") = 0,
          "Local maxima (26-neighbourhood, one per plateau) above threshold, brightest first: "
          "((n, 3) int64 (z, y, x), (n,) float32 values).");
    m.def("trace_atoms",
          [](const carray<float>& vol, float threshold, index_t max_atoms, double min_distance, int fit,
             double max_drift, int radius, int threads, int max_iterations) {
              require_shape(vol, "volume", {-1, -1, -1});
              if (fit < 0 || fit > 2) throw py::value_error("fit: expected 0, 1 or 2, got " + std::to_string(fit));
              if (radius < 1) throw py::value_error("radius: expected >= 1, got " + std::to_string(radius));
              if (max_iterations < 1)
                  throw py::value_error("max_iterations: expected >= 1, got " + std::to_string(max_iterations));
              if (std::isnan(threshold)) throw py::value_error("threshold: expected a number, got nan");
              if (max_atoms < 0) throw py::value_error("max_atoms: expected >= 0 (0: no cap), got " +
                                                       std::to_string(max_atoms));
              require_positive(min_distance, "min_distance", true);
              require_positive(max_drift, "max_drift");
              const int nt = resolve_threads(threads);
              Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              // The fit box (clipped to the volume): its design matrix, pseudo-inverse and thin SVD
              // (35 columns), and per thread a design matrix, its QR and the box values.
              const double side = 2.0 * radius + 1.0;
              const double rows = std::min<double>(side, double(s.nz)) * std::min<double>(side, double(s.ny)) *
                                  std::min<double>(side, double(s.nx));
              check_memory(fit > 0 ? 8.0 * rows * (35.0 * (3.0 + 2.0 * nt) + nt) : 0.0, "the atom fit boxes");
              TraceOptions opt;
              opt.threshold = threshold;
              opt.max_atoms = max_atoms;
              opt.min_distance = min_distance;
              opt.fit = fit;
              opt.max_drift = max_drift;
              opt.radius = radius;
              opt.threads = threads;
              opt.max_iterations = max_iterations;
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
          py::arg("volume"), py::arg("threshold"), py::arg("max_atoms") = 0, py::arg("min_distance") = 0.0,
          py::arg("fit") = 1, py::arg("max_drift") = 1.0, py::arg("radius") = 2, py::arg("threads") = 0,
          py::arg("max_iterations") = 50,
          "Trace atoms: ((n,3) int64 voxel (z,y,x), (n,3) float64 position (z,y,x) in voxels, (n,) float32 "
          "intensity, (n,) int8 status); fit 0 none, 1 polynomial, 2 Gaussian; lengths in voxels.");
}

}  // namespace aet::bind
