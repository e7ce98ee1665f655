// Real-space forward projection of a volume (ray-driven, trilinear) and its exact adjoint.
//
// Geometry (CONVENTIONS.md): detector pixel (iv, iu) has u = iu - ndx/2, v = iv - ndy/2; the ray
// samples the object at r(w) = R (u, v, w) for integer w (voxel units), so at theta = 0 every
// sample falls on a voxel centre and the projection is exactly vol.sum(axis=0).
#pragma once
#include <vector>
#include <aetcore/common.hpp>
#include <aetcore/geometry.hpp>

//
// Inputs are checked (std::invalid_argument naming "volume", "ndy", "ndx", "projections", "shape",
// "rotations" or "threads"); work arrays and, for the allocating overloads, the output are estimated
// first (aet::MemoryError from aetcore/memory.hpp). threads <= 0 means every core.
namespace aet {

// out[k][iv][iu] = sum_w trilinear(vol, R_k (u, v, w)). out has rotations.size()*ndy*ndx floats.
void project_volume(const float* vol, Shape3 shape, const std::vector<Mat3>& rotations,
                    index_t ndy, index_t ndx, float* out, int threads);
// The same, returning a new (rotations.size(), ndy, ndx) array.
std::vector<float> project_volume(const float* vol, Shape3 shape, const std::vector<Mat3>& rotations,
                                  index_t ndy, index_t ndx, int threads);

// vol = P^T proj: the exact adjoint of project_volume (overwrites vol). proj holds
// rotations.size() images of ndy x ndx.
void backproject_volume(const float* proj, index_t ndy, index_t ndx,
                        const std::vector<Mat3>& rotations, Shape3 shape, float* vol, int threads);
// The same, returning a new volume of `shape`.
std::vector<float> backproject_volume(const float* proj, index_t ndy, index_t ndx,
                                      const std::vector<Mat3>& rotations, Shape3 shape, int threads);

// Throws std::invalid_argument naming `name` unless every matrix is finite.
void require_finite_rotations(const std::vector<Mat3>& rotations, const char* name);

}  // namespace aet
