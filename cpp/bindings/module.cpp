// The aetcore._core extension module: each concern registers its own functions.
#include "bindings.hpp"
#include <pybind11/stl.h>

PYBIND11_MODULE(_core, m) {
    // The core's exceptions: std::invalid_argument is ValueError by pybind11's default translation;
    // aet::MemoryError ("X needs about N but only M is available") becomes MemoryError.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const aet::MemoryError& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });
    m.doc() = "aetcore C++ core (OpenMP, FFTW single precision, Eigen). Use the aetcore package, not this module.";
    // The memory rule of aetcore/memory.hpp, for the Python package's own large allocations.
    m.def("available_memory_bytes", &aet::available_memory_bytes,
          "Bytes the process can still take (MemAvailable, cgroup, ulimit -v, AETCORE_MEMORY_LIMIT).");
    m.def("memory_limit_from_env", &aet::memory_limit_from_env,
          "AETCORE_MEMORY_LIMIT in bytes, or None when unset; ValueError when malformed.");
    m.def("format_bytes", &aet::format_bytes, py::arg("nbytes"));
    m.def("check_memory", &aet::check_memory, py::arg("nbytes"), py::arg("what"),
          "Raise MemoryError (need and available) when nbytes exceed the memory available.");
    aet::bind::register_geometry(m);
    aet::bind::register_projector(m);
    aet::bind::register_atoms(m);
    aet::bind::register_reconstruction(m);
    aet::bind::register_trace(m);
    aet::bind::register_refine(m);
}
