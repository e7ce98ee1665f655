#include <aetcore/geometry.hpp>
#include <cmath>
#include <aetcore/common.hpp>

namespace aet {

static Mat3 rot_z(double a) {
    Mat3 r;
    const double c = std::cos(a), s = std::sin(a);
    r << c, -s, 0, s, c, 0, 0, 0, 1;
    return r;
}

static Mat3 rot_y(double a) {
    Mat3 r;
    const double c = std::cos(a), s = std::sin(a);
    r << c, 0, s, 0, 1, 0, -s, 0, c;
    return r;
}

Mat3 euler_zyz(double phi, double theta, double psi) {
    return rot_z(phi) * rot_y(theta) * rot_z(psi);
}

std::vector<Mat3> euler_zyz_many(const double* angles_rad, std::size_t n_angles) {
    require_data(angles_rad, 3.0 * double(n_angles), "angles");
    require_finite(angles_rad, index_t(3 * n_angles), "angles");
    std::vector<Mat3> out(n_angles);
    for (std::size_t k = 0; k < n_angles; ++k)
        out[k] = euler_zyz(angles_rad[3 * k], angles_rad[3 * k + 1], angles_rad[3 * k + 2]);
    return out;
}

}  // namespace aet
