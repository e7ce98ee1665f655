#include <cmath>
#include <aetcore/atoms.hpp>
#include "bindings.hpp"

namespace aet::bind {
namespace {

AtomSet make_atoms(const carray<double>& positions, const carray<std::int32_t>& species,
                   const carray<double>& heights, const carray<double>& sigmas, double cutoff) {
    require_shape(positions, "positions", {-1, 3});
    require_shape(species, "species", {positions.shape(0)});
    require_shape(heights, "heights", {-1});
    require_shape(sigmas, "sigmas", {heights.shape(0)});
    AtomSet a;
    a.positions = positions.data();
    a.species = species.data();
    a.n = positions.shape(0);
    a.heights.assign(heights.data(), heights.data() + heights.shape(0));
    a.sigmas.assign(sigmas.data(), sigmas.data() + sigmas.shape(0));
    a.cutoff = cutoff;  // the core checks the values (aet::validate_atoms)
    return a;
}

}  // namespace

void register_atoms(py::module_& m) {
    m.def("project_atoms",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& sigmas, const carray<double>& angles_rad, index_t ndy, index_t ndx,
             double cutoff, int threads) {
              AtomSet a = make_atoms(positions, species, heights, sigmas, cutoff);
              auto rots = rotations_from(angles_rad);
              std::vector<float> out;
              {
                  py::gil_scoped_release nogil;
                  out = project_atoms(a, rots, ndy, ndx, threads);
              }
              return to_array(std::move(out), {py::ssize_t(rots.size()), py::ssize_t(ndy), py::ssize_t(ndx)});
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("sigmas"), py::arg("angles_rad"),
          py::arg("ndy"), py::arg("ndx"), py::arg("cutoff") = 5.0, py::arg("threads") = 0,
          "Projections of Gaussian atoms; positions and sigmas in voxels.");
    m.def("footprint_sums",
          [](const carray<double>& positions, const carray<double>& angles_rad, const carray<double>& amplitudes,
             const carray<double>& sigmas, index_t half, const carray<float>& images, const carray<float>& weights,
             int threads) {
              require_shape(positions, "positions", {-1, 3});
              require_shape(amplitudes, "amplitudes", {-1});
              require_shape(sigmas, "sigmas", {amplitudes.shape(0)});
              auto rots = rotations_from(angles_rad);
              require_shape(images, "images", {py::ssize_t(rots.size()), -1, -1});
              require_shape(weights, "weights", {images.shape(0), images.shape(1), images.shape(2)});
              const py::ssize_t n = positions.shape(0), S = sigmas.shape(0);
              std::vector<double> amp(amplitudes.data(), amplitudes.data() + S), sig(sigmas.data(), sigmas.data() + S);
              std::vector<double> a(std::size_t(n * S)), c(std::size_t(n * S * S));
              {
                  py::gil_scoped_release nogil;
                  footprint_sums(positions.data(), n, rots, images.shape(1), images.shape(2), amp, sig, half,
                                 images.data(), weights.data(), a.data(), c.data(), threads);
              }
              return py::make_tuple(to_array(std::move(a), {n, S}), to_array(std::move(c), {n, S, S}));
          },
          py::arg("positions"), py::arg("angles_rad"), py::arg("amplitudes"), py::arg("sigmas"), py::arg("half"),
          py::arg("images"), py::arg("weights"), py::arg("threads") = 0,
          "Window sums (a, c) of every atom's footprint for every species (aet::footprint_sums); positions and "
          "sigmas in pixels, amplitudes the integrated intensities.");
    m.def("render_atoms",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& sigmas, index_t nz, index_t ny, index_t nx, double cutoff, int threads) {
              AtomSet a = make_atoms(positions, species, heights, sigmas, cutoff);
              std::vector<float> out;
              {
                  py::gil_scoped_release nogil;
                  out = render_atoms(a, Shape3{nz, ny, nx}, threads);
              }
              return to_array(std::move(out), {py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx)});
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("sigmas"), py::arg("nz"),
          py::arg("ny"), py::arg("nx"), py::arg("cutoff") = 5.0, py::arg("threads") = 0,
          "Gaussian atoms rendered on the voxel grid (voxel means); positions and sigmas in voxels.");
}

}  // namespace aet::bind
