"""One home for each default: the C++ options structs (aet::GenfireOptions, aet::TraceOptions,
aet::RefineOptions) hold them, and the Python signatures and the TOML specification
(``aet config --defaults``) read them from there. Every shared option is compared three ways."""
import inspect
import math

import pytest

from aetcore import _core
from aetcore.app.config import DEFAULTS, default_config_toml
from aetcore.steps import reconstruct, refine, trace

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

GENFIRE = ["oversampling", "iterations", "positivity", "interpolation_radius", "plane_upsampling", "support_margin",
           "extension", "momentum", "rfree_fraction", "patience", "tol"]
TRACE = ["min_distance", "max_drift", "fit_radius", "max_iterations"]
REFINE = ["max_shift", "refine_positions", "refine_heights", "refine_b", "iterations", "cutoff", "precision",
          "refine_angles", "angle_range", "angle_rounds"]


def _signature_defaults(fn):
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()}


def _same(a, b):
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("section, fn, struct, names", [
    ("reconstruct", reconstruct.genfire, _core.GenfireOptions(), GENFIRE),
    ("trace", trace.trace_atoms, _core.TraceOptions(), TRACE),
    ("refine", refine.refine, _core.RefineOptions(), REFINE),
])
def test_signature_struct_and_config_agree(section, fn, struct, names):
    sig = _signature_defaults(fn)
    printed = tomllib.loads(default_config_toml())[section]
    for name in names:
        cpp = getattr(struct, name)
        assert _same(sig[name], cpp), f"{fn.__name__}({name}={sig[name]!r}) but the C++ struct says {cpp!r}"
        assert _same(DEFAULTS[section][name], cpp), f"[{section}] {name} = {DEFAULTS[section][name]!r}, C++ {cpp!r}"
        assert printed[name] == cpp, f"aet config --defaults prints [{section}] {name} = {printed[name]!r}"


def test_options_that_change_form_between_python_and_cpp():
    g, t = _core.GenfireOptions(), _core.TraceOptions()
    # the R-free seed: the configuration's seed is the struct's; genfire(seed=None) draws fresh entropy
    assert DEFAULTS["reconstruct"]["seed"] == g.seed
    # fit: a name in Python and the configuration, a code in C++
    assert trace.FITS[_signature_defaults(trace.trace_atoms)["fit"]] == t.fit
    assert trace.FITS[DEFAULTS["trace"]["fit"]] == t.fit
    # threshold: None / "auto" / NaN all mean threshold_fraction times the volume's maximum
    assert _signature_defaults(trace.trace_atoms)["threshold"] is None and DEFAULTS["trace"]["threshold"] == "auto"
    assert math.isnan(t.threshold) and trace.DEFAULT_THRESHOLD_FRACTION == t.threshold_fraction
    assert refine.B_BOUNDS == (_core.RefineOptions().b_min, _core.RefineOptions().b_max)


def test_the_documented_values():
    # The values the docstrings and the issue state: a change of a default must be deliberate.
    g, t, r = _core.GenfireOptions(), _core.TraceOptions(), _core.RefineOptions()
    assert (g.oversampling, g.iterations, g.momentum, g.rfree_fraction, g.patience) == (3.0, 100, 0.9, 0.05, 20)
    assert (t.max_drift, t.min_distance, t.fit_radius, t.threshold_fraction) == (1.5, 2.0, 2, 0.1)
    assert (r.max_shift, r.iterations, r.precondition, r.cutoff, r.precision) == (1.0, 25, True, 5.0, "sandwich")


def test_structs_validate_and_name_the_option():
    g = _core.GenfireOptions()
    g.validate()
    g.momentum = 1.0
    with pytest.raises(ValueError, match="momentum"):
        g.validate()
    t = _core.TraceOptions()
    t.max_drift = -1
    with pytest.raises(ValueError, match="max_drift"):
        t.validate()
    r = _core.RefineOptions()
    r.precision = "exact"
    with pytest.raises(ValueError, match="precision"):
        r.validate()


def test_grid_sizes_are_even_and_7_smooth():
    def smooth(m):
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 300):
        for os_ in (1.0, 1.5, 2.0, 3.0):
            N = reconstruct.oversampled_size(n, os_)
            raw = math.ceil(os_ * n - 1e-9)
            assert N >= raw and N % 2 == 0 and smooth(N)
            # the next even 7-smooth number: nothing smooth and even in between
            assert not any(smooth(m) for m in range(raw + (raw % 2), N, 2))
    assert reconstruct.oversampled_size(131, 3) == 400 and reconstruct.oversampled_size(128, 3) == 384
