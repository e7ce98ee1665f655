// Shared helpers of the pybind11 bindings: array checks at the boundary and registration hooks.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <string>
#include <vector>
#include "common.hpp"
#include "geometry.hpp"

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

// (K, 3) Euler angles in radians -> rotation matrices.
std::vector<Mat3> rotations_from(const carray<double>& angles_rad);

void register_geometry(py::module_& m);
void register_projector(py::module_& m);
void register_atoms(py::module_& m);
void register_reconstruction(py::module_& m);
void register_trace(py::module_& m);
void register_refine(py::module_& m);

}  // namespace aet::bind
