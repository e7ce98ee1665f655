#include "bindings.hpp"

namespace aet::bind {

std::vector<Mat3> rotations_from(const carray<double>& angles_rad) {
    require_shape(angles_rad, "angles", {-1, 3});
    return euler_zyz_many(angles_rad.data(), std::size_t(angles_rad.shape(0)));
}

void register_geometry(py::module_& m) {
    m.def("euler_matrices", [](const carray<double>& angles_rad) {
        auto rots = rotations_from(angles_rad);
        carray<double> out({py::ssize_t(rots.size()), py::ssize_t(3), py::ssize_t(3)});
        double* o = out.mutable_data();
        for (std::size_t k = 0; k < rots.size(); ++k)
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) o[k * 9 + i * 3 + j] = rots[k](i, j);
        return out;
    }, py::arg("angles_rad"), "(K, 3) ZYZ Euler angles in radians -> (K, 3, 3) rotation matrices.");
}

}  // namespace aet::bind
