// Shared helpers of the pybind11 bindings: array checks at the boundary and registration hooks.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <cmath>
#include <string>
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/geometry.hpp>
#include <aetcore/memory.hpp>

namespace py = pybind11;

namespace aet::bind {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// Throws ValueError unless `a` has ndim `nd` (and, where given >= 0, the listed extents).
template <class T>
void require_shape(const carray<T>& a, const char* name, std::vector<py::ssize_t> shape) {
    if (a.ndim() != py::ssize_t(shape.size()))
        throw py::value_error(std::string(name) + ": expected " + std::to_string(shape.size()) +
                              " dimensions, got " + std::to_string(a.ndim()));
    for (std::size_t i = 0; i < shape.size(); ++i)
        if (shape[i] >= 0 && a.shape(i) != shape[i])
            throw py::value_error(std::string(name) + ": axis " + std::to_string(i) + " must have length " +
                                  std::to_string(shape[i]) + ", got " + std::to_string(a.shape(i)));
}

// Throws ValueError naming `name` unless every value is finite.
template <class T>
void require_finite(const T* data, py::ssize_t n, const char* name) {
    for (py::ssize_t i = 0; i < n; ++i)
        if (!std::isfinite(double(data[i])))
            throw py::value_error(std::string(name) + ": expected finite values, got " +
                                  std::to_string(double(data[i])) + " at flat index " + std::to_string(i));
}

// Throws ValueError unless `value` is finite and > 0 (or >= 0 when `allow_zero`).
inline void require_positive(double value, const char* name, bool allow_zero = false) {
    if (!std::isfinite(value) || value < 0 || (!allow_zero && value == 0))
        throw py::value_error(std::string(name) + ": expected a finite number " + (allow_zero ? ">= 0" : "> 0") +
                              ", got " + std::to_string(value));
}

// Throws ValueError unless 0 <= value (a size or count).
inline void require_size(index_t value, const char* name) {
    if (value < 0) throw py::value_error(std::string(name) + ": expected a size >= 0, got " + std::to_string(value));
}

// Every large allocation is estimated first by the core's aet::check_memory (aetcore/memory.hpp),
// which throws aet::MemoryError; module.cpp translates it to Python's MemoryError.
using aet::check_memory;

// (K, 3) Euler angles in radians -> rotation matrices; refuses NaN and Inf.
std::vector<Mat3> rotations_from(const carray<double>& angles_rad);

void register_geometry(py::module_& m);
void register_projector(py::module_& m);
void register_atoms(py::module_& m);
void register_reconstruction(py::module_& m);
void register_trace(py::module_& m);
void register_refine(py::module_& m);

}  // namespace aet::bind
