// The aetcore._core extension module: each concern registers its own functions.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "aetcore C++ core (OpenMP, FFTW single precision, Eigen). Use the aetcore package, not this module.";
    aet::bind::register_geometry(m);
    aet::bind::register_projector(m);
    aet::bind::register_atoms(m);
    aet::bind::register_reconstruction(m);
    aet::bind::register_trace(m);
    aet::bind::register_refine(m);
}
