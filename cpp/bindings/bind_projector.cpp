#include "bindings.hpp"
#include <aetcore/projector.hpp>

namespace aet::bind {

void register_projector(py::module_& m) {
    m.def("project_volume",
          [](const carray<float>& vol, const carray<double>& angles_rad, index_t ndy, index_t ndx, int threads) {
              require_shape(vol, "volume", {-1, -1, -1});
              require_size(ndy, "ndy");
              require_size(ndx, "ndx");
              auto rots = rotations_from(angles_rad);
              resolve_threads(threads);
              Shape3 s{vol.shape(0), vol.shape(1), vol.shape(2)};
              check_memory(4.0 * double(rots.size()) * double(ndy) * double(ndx) + 4.0 * double(vol.size()),
                           "projecting a volume");
              carray<float> out({py::ssize_t(rots.size()), py::ssize_t(ndy), py::ssize_t(ndx)});
              const float* v = vol.data();
              float* o = out.mutable_data();
              {
                  py::gil_scoped_release nogil;
                  project_volume(v, s, rots, ndy, ndx, o, threads);
              }
              return out;
          },
          py::arg("volume"), py::arg("angles_rad"), py::arg("ndy"), py::arg("ndx"), py::arg("threads") = 0);
    m.def("backproject_volume",
          [](const carray<float>& proj, const carray<double>& angles_rad, index_t nz, index_t ny, index_t nx,
             int threads) {
              require_shape(proj, "projections", {angles_rad.shape(0), -1, -1});
              require_size(nz, "nz");
              require_size(ny, "ny");
              require_size(nx, "nx");
              auto rots = rotations_from(angles_rad);
              const int nt = resolve_threads(threads);
              Shape3 s{nz, ny, nx};
              check_memory(4.0 * double(nz) * double(ny) * double(nx) + 4.0 * nt * double(nz) * double(nx),
                           "back-projecting a tilt series");
              carray<float> out({py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx)});
              const float* p = proj.data();
              float* o = out.mutable_data();
              const index_t ndy = proj.shape(1), ndx = proj.shape(2);
              {
                  py::gil_scoped_release nogil;
                  backproject_volume(p, ndy, ndx, rots, s, o, threads);
              }
              return out;
          },
          py::arg("projections"), py::arg("angles_rad"), py::arg("nz"), py::arg("ny"), py::arg("nx"),
          py::arg("threads") = 0);
}

}  // namespace aet::bind
