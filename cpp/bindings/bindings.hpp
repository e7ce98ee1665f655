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

// require_finite, require_positive, require_size and require_data are the core's (aetcore/common.hpp):
// they throw std::invalid_argument, which pybind11 turns into ValueError.

// A vector made by the core, handed to numpy without a copy (the array owns it). Needs the GIL.
template <class T>
carray<T> to_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    auto* owner = new std::vector<T>(std::move(v));
    py::capsule free_owner(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return carray<T>(std::move(shape), owner->data(), free_owner);
}

// Every large allocation is estimated first by the core's aet::check_memory (aetcore/memory.hpp),
// which throws aet::MemoryError; module.cpp translates it to Python's MemoryError.
using aet::check_memory;

// (K, 3) Euler angles in radians -> rotation matrices; the core refuses NaN and Inf ("angles").
std::vector<Mat3> rotations_from(const carray<double>& angles_rad);

void register_geometry(py::module_& m);
void register_projector(py::module_& m);
void register_atoms(py::module_& m);
void register_reconstruction(py::module_& m);
void register_trace(py::module_& m);
void register_refine(py::module_& m);

}  // namespace aet::bind
