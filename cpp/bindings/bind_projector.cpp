#include "bindings.hpp"
#include <aetcore/projector.hpp>

namespace aet::bind {

// The core checks the sizes, threads and memory (aetcore/projector.hpp); here only arrays are converted.
void register_projector(py::module_& m) {
    m.def("project_volume",
          [](const carray<float>& vol, const carray<double>& angles_rad, index_t ndy, index_t ndx, int threads) {
              require_shape(vol, "volume", {-1, -1, -1});
              auto rots = rotations_from(angles_rad);
              const Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              const float* v = vol.data();
              std::vector<float> out;
              {
                  py::gil_scoped_release nogil;
                  out = project_volume(v, s, rots, ndy, ndx, threads);
              }
              return to_array(std::move(out), {py::ssize_t(rots.size()), py::ssize_t(ndy), py::ssize_t(ndx)});
          },
          py::arg("volume"), py::arg("angles_rad"), py::arg("ndy"), py::arg("ndx"), py::arg("threads") = 0);
    m.def("backproject_volume",
          [](const carray<float>& proj, const carray<double>& angles_rad, index_t nz, index_t ny, index_t nx,
             int threads) {
              require_shape(proj, "projections", {angles_rad.shape(0), -1, -1});
              auto rots = rotations_from(angles_rad);
              const Shape3 s{nz, ny, nx};
              const float* p = proj.data();
              const index_t ndy = proj.shape(1), ndx = proj.shape(2);
              std::vector<float> out;
              {
                  py::gil_scoped_release nogil;
                  out = backproject_volume(p, ndy, ndx, rots, s, threads);
              }
              return to_array(std::move(out), {py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx)});
          },
          py::arg("projections"), py::arg("angles_rad"), py::arg("nz"), py::arg("ny"), py::arg("nx"),
          py::arg("threads") = 0);
}

}  // namespace aet::bind
