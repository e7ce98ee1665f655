// The C++ side of the "same volume from C++ and from Python" check (genfire_cross_check.py):
//   genfire_cross_check <dir> <out.f32>
// reads <dir>/params.txt ("key value" lines: K ny nx nz vy vx oversampling iterations seed threads
// rfree_fraction), <dir>/tilts.f32 (K x ny x nx float32), <dir>/euler.f64 (K x 3 ZYZ radians) and,
// if present, <dir>/support.u8 (nz x vy x vx bytes), runs aet::genfire with every other option at its
// default, and writes the volume as raw float32 to <out.f32>.
#include <aetcore/genfire.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

template <class T>
std::vector<T> read_raw(const std::string& path, std::size_t count, bool required = true) {
    std::vector<T> v;
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (required) throw std::runtime_error("cannot open " + path);
        return v;
    }
    v.resize(count);
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(T)));
    if (f.gcount() != std::streamsize(count * sizeof(T))) throw std::runtime_error(path + ": too short");
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s <dir> <out.f32>\n", argv[0]);
        return 2;
    }
    try {
        const std::string dir = argv[1];
        std::map<std::string, double> p;
        std::ifstream pf(dir + "/params.txt");
        std::string key;
        double value;
        while (pf >> key >> value) p[key] = value;
        for (const char* k : {"K", "ny", "nx", "nz", "vy", "vx", "oversampling", "iterations", "seed", "threads",
                              "rfree_fraction"})
            if (!p.count(k)) throw std::runtime_error(std::string("params.txt: no ") + k);
        const aet::index_t K = aet::index_t(p["K"]), ny = aet::index_t(p["ny"]), nx = aet::index_t(p["nx"]);
        const aet::Shape3 shape{aet::index_t(p["nz"]), aet::index_t(p["vy"]), aet::index_t(p["vx"])};
        aet::GenfireOptions opt;
        opt.oversampling = p["oversampling"];
        opt.iterations = int(p["iterations"]);
        opt.seed = std::uint64_t(p["seed"]);
        opt.threads = int(p["threads"]);
        opt.rfree_fraction = p["rfree_fraction"];
        const auto tilts = read_raw<float>(dir + "/tilts.f32", std::size_t(K * ny * nx));
        const auto euler = read_raw<double>(dir + "/euler.f64", std::size_t(3 * K));
        const auto support = read_raw<std::uint8_t>(dir + "/support.u8", std::size_t(shape.size()), false);
        const aet::GenfireResult r = aet::genfire(tilts.data(), K, ny, nx, euler.data(), shape,
                                                  support.empty() ? nullptr : support.data(), opt);
        std::ofstream out(argv[2], std::ios::binary);
        out.write(reinterpret_cast<const char*>(r.volume.data()), std::streamsize(r.volume.size() * sizeof(float)));
        std::printf("genfire_cross_check: grid %lld, %zu iterations, error %.6g\n", (long long)r.grid_size,
                    r.errors.size(), r.errors.back());
        return out ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "genfire_cross_check: %s\n", e.what());
        return 1;
    }
}
