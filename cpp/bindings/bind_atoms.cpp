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
    a.cutoff = cutoff;
    for (index_t i = 0; i < a.n; ++i)
        if (a.species[i] < 0 || a.species[i] >= index_t(a.heights.size()))
            throw py::value_error("species: index " + std::to_string(a.species[i]) + " of atom " +
                                  std::to_string(i) + " is outside 0.." + std::to_string(a.heights.size() - 1));
    require_finite(positions.data(), positions.size(), "positions");
    require_finite(heights.data(), heights.size(), "heights");
    require_positive(cutoff, "cutoff");
    for (std::size_t q = 0; q < a.sigmas.size(); ++q) {
        const double s = a.sigmas[q];
        if (!(s > 0) || !std::isfinite(s)) throw py::value_error("sigmas: every sigma must be finite and positive");
        // The amplitude H (2 pi)^{3/2} s^3 and the window cutoff * s must stay finite.
        if (!std::isfinite(a.heights[q] * std::pow(2.0 * M_PI, 1.5) * s * s * s) || !std::isfinite(cutoff * s))
            throw py::value_error("sigmas: sigma " + std::to_string(s) + " of species " + std::to_string(q) +
                                  " overflows the atom's amplitude or window");
    }
    return a;
}

}  // namespace

void register_atoms(py::module_& m) {
    m.def("project_atoms",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& sigmas, const carray<double>& angles_rad, index_t ndy, index_t ndx,
             double cutoff, int threads) {
              AtomSet a = make_atoms(positions, species, heights, sigmas, cutoff);
              require_size(ndy, "ndy");
              require_size(ndx, "ndx");
              auto rots = rotations_from(angles_rad);
              resolve_threads(threads);
              check_memory(4.0 * double(rots.size()) * double(ndy) * double(ndx), "projecting atoms");
              carray<float> out({py::ssize_t(rots.size()), py::ssize_t(ndy), py::ssize_t(ndx)});
              float* o = out.mutable_data();
              {
                  py::gil_scoped_release nogil;
                  project_atoms(a, rots, ndy, ndx, o, threads);
              }
              return out;
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("sigmas"), py::arg("angles_rad"),
          py::arg("ndy"), py::arg("ndx"), py::arg("cutoff") = 5.0, py::arg("threads") = 0,
          "Projections of Gaussian atoms; positions and sigmas in voxels.");
    m.def("render_atoms",
          [](const carray<double>& positions, const carray<std::int32_t>& species, const carray<double>& heights,
             const carray<double>& sigmas, index_t nz, index_t ny, index_t nx, double cutoff, int threads) {
              AtomSet a = make_atoms(positions, species, heights, sigmas, cutoff);
              require_size(nz, "nz");
              require_size(ny, "ny");
              require_size(nx, "nx");
              resolve_threads(threads);
              check_memory(4.0 * double(nz) * double(ny) * double(nx), "rendering atoms");
              carray<float> out({py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx)});
              float* o = out.mutable_data();
              {
                  py::gil_scoped_release nogil;
                  render_atoms(a, Shape3{nz, ny, nx}, o, threads);
              }
              return out;
          },
          py::arg("positions"), py::arg("species"), py::arg("heights"), py::arg("sigmas"), py::arg("nz"),
          py::arg("ny"), py::arg("nx"), py::arg("cutoff") = 5.0, py::arg("threads") = 0,
          "Gaussian atoms rendered on the voxel grid (voxel means); positions and sigmas in voxels.");
}

}  // namespace aet::bind
