// Euler angles (ZYZ, CONVENTIONS.md) to rotation matrices acting on column vectors (x, y, z).
#pragma once
#include <Eigen/Dense>
#include <vector>

namespace aet {

using Mat3 = Eigen::Matrix3d;
using Vec3 = Eigen::Vector3d;

// R = Rz(phi) * Ry(theta) * Rz(psi), angles in radians.
Mat3 euler_zyz(double phi, double theta, double psi);

// n_angles x 3 array of (phi, theta, psi) in radians, row-major, to matrices. Throws
// std::invalid_argument naming "angles" when a value is NaN or infinite (or the pointer is null).
std::vector<Mat3> euler_zyz_many(const double* angles_rad, std::size_t n_angles);

}  // namespace aet
