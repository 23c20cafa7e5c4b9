"""Claims about symmft.theory.gaussian, each checked against truth from outside the fast rule: mpmath at 30 digits (a
different quadrature rule) and the erf closed forms."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from symmft.theory import gaussian_mp
from symmft.backend import array_module, get_xp, gpu_available, to_numpy
from symmft import HyperparameterError
from symmft.theory.gaussian import expect1, expect1_mp, expect2, expect2_mp

# Tolerances, each with its reason.
TOL_VS_MP = 1e-10  # required agreement of the fast rule with mpmath (measured worst: 2e-12 in 1-D and 2-D)
TOL_ERF = 1e-11  # fast rule vs erf closed forms; erf-type integrands are its binding case (measured 4e-12)
TOL_IDENTITY = 1e-12  # exact identities evaluated by two paths of the fast rule
TOL_MP_SELF = 1e-25  # mpmath reference (dps 30) vs closed forms / vs mpmath.quad: it must hold >= 20 digits
TOL_TABLE = 1e-20  # expect2_mp recomputed vs the stored 25-digit values below


def xp_functions(xp) -> dict:
    """The integrands of the mean-field maps (gates, their squares, derivatives and products) on xp arrays."""
    if xp is np:
        from scipy.special import erf
    else:
        from cupyx.scipy.special import erf

    def sig(u):
        return 0.5 * (1 + xp.tanh(0.5 * u))  # overflow-free logistic

    return {
        "sigmoid": sig,
        "sigmoid2": lambda u: sig(u) ** 2,
        "tanh": xp.tanh,
        "tanh2": lambda u: xp.tanh(u) ** 2,
        "dtanh2": lambda u: (1 - xp.tanh(u) ** 2) ** 2,
        "dsigmoid2": lambda u: (sig(u) * (1 - sig(u))) ** 2,
        "utanh": lambda u: u * xp.tanh(u),
        "erf2": lambda u: erf(u) ** 2,
    }


def _mp_sig(u):
    return 1 / (1 + mpmath.exp(-u))


MP_FUNCTIONS = {
    "sigmoid": _mp_sig,
    "sigmoid2": lambda u: _mp_sig(u) ** 2,
    "tanh": mpmath.tanh,
    "tanh2": lambda u: mpmath.tanh(u) ** 2,
    "dtanh2": lambda u: (1 - mpmath.tanh(u) ** 2) ** 2,
    "dsigmoid2": lambda u: (_mp_sig(u) * (1 - _mp_sig(u))) ** 2,
    "utanh": lambda u: u * mpmath.tanh(u),
    "erf2": lambda u: mpmath.erf(u) ** 2,
}
NP = xp_functions(np)
NAMES = list(NP)
RHOS = [-1.0, -0.5, 0.0, 0.5, 0.9, 0.999, 1 - 1e-6, 1.0]


def _scale1(f, mean, var):
    """E|f(u)|, the error scale (computed by the fast rule: a scale, not a reference). It is the relative error where
    f has one sign, and an absolute floor where E f ~ 0 by symmetry (E tanh(u) at mean 0)."""
    return expect1(lambda u: np.abs(f(u)), mean, var)


def _scale2(f, g, mean, var, cov):
    return expect2(lambda u: np.abs(f(u)), lambda u: np.abs(g(u)), mean, var, cov)


# ---- 1-D against mpmath
def _box_1d(n: int, seed: int):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-4, 4, n).round(3)
    var = 10 ** rng.uniform(-6, 2, n)
    return [(NAMES[i % len(NAMES)], m, v) for i, (m, v) in enumerate(zip(mean, var))]


@pytest.mark.parametrize("name", NAMES)
def test_expect1_matches_mpmath_across_mean_and_variance_box(name):
    edges = [(0.0, 100.0), (0.5, 30.0), (-4.0, 1e-6)]  # the box's corners, for every function
    points = [(m, v) for n, m, v in _box_1d(32, seed=1) if n == name] + edges
    mean, var = np.array(points).T
    got = expect1(NP[name], mean, var)
    ref = np.array([float(expect1_mp(MP_FUNCTIONS[name], m, v)) for m, v in points])
    np.testing.assert_array_less(np.abs(got - ref), TOL_VS_MP * _scale1(NP[name], mean, var))


@pytest.mark.parametrize("name", ["dtanh2", "erf2", "utanh"])
def test_expect1_matches_mpmath_for_large_variance(name):
    # the kink at u = 0 is 1/sigma wide in z; var = 1e4 is beyond the box, to show the grading scales with sigma
    mean, var = np.array([(0.0, 1e4), (1.5, 1e4), (-3.0, 300.0)]).T
    got = expect1(NP[name], mean, var)
    ref = np.array([float(expect1_mp(MP_FUNCTIONS[name], m, v)) for m, v in zip(mean, var)])
    np.testing.assert_array_less(np.abs(got - ref), TOL_VS_MP * _scale1(NP[name], mean, var))


# ---- 2-D against mpmath. Nested quadrature at 30 digits takes 2-15 s per point at large variance, so the values of
# a seeded sample (5 points per rho; var = 100 and 30 in each) are stored here to 25 digits, written by
# expect2_mp(dps=30). test_expect2_mp_reproduces_reference_table recomputes the cheap rows in every run, all rows
# with -m slow.
REFERENCE_2D = [  # (f, g, mean, var, cov, E[f(u_a) g(u_b)])
    ("sigmoid", "erf2", -3.815, 100.0, -100.0, "0.3536351226296162636358873"),
    ("tanh2", "tanh2", -1.454, 30.0, -30.0, "0.7288704235901225605000147"),
    ("dtanh2", "tanh2", -0.929, 0.000889, -0.000889, "0.1168924201523766476842962"),
    ("sigmoid2", "tanh2", 2.797, 0.0342, -0.0342, "0.8727754729142712419033188"),
    ("tanh2", "erf2", 1.646, 3.4, -3.4, "0.4936331099549801261869567"),
    ("dsigmoid2", "dsigmoid2", 0.453, 100.0, -50.0, "0.00004998931873512243936973419"),
    ("tanh", "tanh2", -0.201, 30.0, -15.0, "-0.02182426310841559419955523"),
    ("sigmoid2", "sigmoid", 0.168, 3.89e-05, -1.945e-05, "0.1591329347804324639223541"),
    ("erf2", "utanh", 0.364, 2.18e-05, -1.09e-05, "0.01963321626906063508398236"),
    ("sigmoid", "dsigmoid2", -0.214, 1.09, -0.545, "0.01933065808427926331075764"),
    ("dsigmoid2", "sigmoid2", -1.235, 100.0, 0.0, "0.002705867637154154867525852"),
    ("utanh", "tanh2", 2.471, 30.0, 0.0, "4.135702370031731137537837"),
    ("sigmoid2", "dsigmoid2", -0.365, 2.53, 0.0, "0.009024816570151132680945119"),
    ("erf2", "sigmoid2", -3.478, 0.000159, 0.0, "0.0008969489817692825129652335"),
    ("tanh", "tanh2", -2.111, 9.12e-05, 0.0, "-0.9157267617765085459718121"),
    ("dtanh2", "dsigmoid2", 3.01, 100.0, 50.0, "0.0003805076177474527569709986"),
    ("tanh2", "tanh2", 2.175, 30.0, 15.0, "0.7551108589177064958775527"),
    ("dtanh2", "erf2", -2.913, 1.19, 0.595, "0.02165010331748448206721849"),
    ("dtanh2", "dtanh2", -1.057, 0.0128, 0.0064, "0.02571434297178075015391555"),
    ("erf2", "sigmoid", 0.332, 0.0754, 0.0377, "0.112205368783737775818807"),
    ("erf2", "erf2", 2.43, 100.0, 90.0, "0.8854441425527392425819047"),
    ("dtanh2", "erf2", -1.813, 30.0, 27.0, "0.06849697206737894211894811"),
    ("sigmoid", "dsigmoid2", 0.41, 18.8, 16.92, "0.00752643955094688572384819"),
    ("erf2", "sigmoid2", 2.725, 0.0669, 0.06021, "0.8773070416919159670096612"),
    ("dtanh2", "erf2", 2.973, 0.258, 0.23220000000000002, "0.0007430319442984940054340255"),
    ("dsigmoid2", "utanh", 2.13, 100.0, 99.9, "0.004974252162991931322196852"),
    ("tanh2", "sigmoid", -1.23, 30.0, 29.97, "0.3463240404814377138054582"),
    ("dsigmoid2", "tanh", 3.924, 0.834, 0.833166, "0.00125840113555389414756232"),
    ("tanh2", "dtanh2", 0.562, 7.95e-06, 7.94205e-06, "0.1422970769169137768101941"),
    ("sigmoid2", "tanh2", -2.881, 4.11e-05, 4.10589e-05, "0.002784641938348379889861539"),
    ("tanh", "erf2", -3.923, 100.0, 99.9999, "-0.3032605617820849553252871"),
    ("utanh", "dtanh2", -1.956, 30.0, 29.999969999999998, "0.02246656541748751633132685"),
    ("erf2", "dsigmoid2", 0.134, 0.00915, 0.00914999085, "0.002019962837627939386876614"),
    ("erf2", "utanh", -0.846, 7.78, 7.7799922200000005, "2.160538401631582970137082"),
    ("tanh2", "tanh2", -0.016, 0.000562, 0.000561999438, "0.00000186717854672300653524109"),
    ("sigmoid", "dsigmoid2", -2.225, 100.0, 100.0, "0.003188163930064939295536467"),
    ("dtanh2", "dtanh2", -1.779, 30.0, 30.0, "0.06303864075092410148046012"),
    ("tanh", "tanh2", -3.719, 0.00246, 0.00246, "-0.9964581691204736693543754"),
    ("sigmoid", "tanh", 2.537, 19.6, 19.6, "0.5973280703452223792329471"),
    ("tanh", "tanh", 1.39, 0.204, 0.204, "0.7278798432680645898582987"),
]


def test_reference_table_covers_every_correlation_and_the_variance_box():
    rhos = {round(c / v, 9) for _, _, _, v, c, _ in REFERENCE_2D}
    assert rhos == {round(r, 9) for r in RHOS}
    assert {30.0, 100.0} <= {v for *_, v, _, _ in REFERENCE_2D} and min(v for *_, v, _, _ in REFERENCE_2D) < 1e-4


@pytest.mark.parametrize("row", REFERENCE_2D, ids=lambda r: f"{r[0]}-{r[1]}-rho{r[4] / r[3]:.6g}-var{r[3]:g}")
def test_expect2_matches_mpmath_across_box_and_correlations(row):
    f, g, mean, var, cov, value = row
    got = expect2(NP[f], NP[g], mean, var, cov)
    assert abs(got - float(value)) < TOL_VS_MP * _scale2(NP[f], NP[g], mean, var, cov)


def _cheap(row) -> bool:
    """Nested 30-digit quadrature is fast where rho = 0, +-1 (1-D) or var s^2 is small (Gauss-Hermite inner)."""
    _, _, _, var, cov, _ = row
    return cov == 0 or abs(cov) == var or var < 1


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, marks=() if _cheap(r) else pytest.mark.slow) for r in REFERENCE_2D],
    ids=lambda r: f"{r[0]}-{r[1]}-rho{r[4] / r[3]:.6g}-var{r[3]:g}",
)
def test_expect2_mp_reproduces_reference_table(row):
    f, g, mean, var, cov, value = row
    with mpmath.workdps(30):
        got = expect2_mp(MP_FUNCTIONS[f], MP_FUNCTIONS[g], mean, var, cov, dps=30)
        assert abs(got - mpmath.mpf(value)) <= TOL_TABLE * max(1, abs(got))


# ---- the mpmath reference itself against closed forms and against mpmath.quad
@pytest.mark.parametrize("mean,var", [(0.0, 1.0), (0.7, 100.0), (-3.0, 1e-6), (2.0, 1e4), (1.0, 0.0)])
def test_expect1_mp_matches_erf_closed_form_to_25_digits(mean, var):
    with mpmath.workdps(40):
        exact = mpmath.erf(mpmath.mpf(mean) / mpmath.sqrt(1 + 2 * mpmath.mpf(var)))
        assert abs(expect1_mp(mpmath.erf, mean, var, dps=30) - exact) < TOL_MP_SELF


@pytest.mark.parametrize("var,rho", [(1.0, 0.5), (0.01, -0.9)] + [pytest.param(30.0, r, marks=pytest.mark.slow)
                                                                   for r in (-0.999, 0.9)])
def test_expect2_mp_matches_erf_arcsin_closed_form_to_25_digits(var, rho):
    var, cov = mpmath.mpf(var), mpmath.mpf(rho) * mpmath.mpf(var)
    with mpmath.workdps(40):
        exact = 2 / mpmath.pi * mpmath.asin(2 * cov / (1 + 2 * var))
        assert abs(expect2_mp(mpmath.erf, mpmath.erf, 0, var, cov, dps=30) - exact) < TOL_MP_SELF


@pytest.mark.parametrize("name", NAMES)
def test_mp_inner_fixed_rule_matches_mpmath_quad(name):
    # expect2_mp's inner integrals use fixed rules (panels; Gauss-Hermite for small sigma): hold them to mpmath.quad
    with mpmath.workdps(40):
        for mean, var in [(0.3, 100.0), (-2.0, 2.0), (1.0, 0.04), (-0.5, 1e-4)]:
            m, v = mpmath.mpf(mean), mpmath.mpf(var)
            fixed = gaussian_mp._mp_expect1(MP_FUNCTIONS[name], m, v, adaptive=False)
            assert abs(fixed - expect1_mp(MP_FUNCTIONS[name], m, v, dps=35)) < TOL_MP_SELF * max(1, abs(fixed))


# ---- the fast rule against closed forms
@pytest.mark.parametrize("a", [0.5, 1.0, 3.0])
def test_expect1_matches_erf_closed_form_on_a_grid(a):
    from scipy.special import erf

    mean, var = np.meshgrid(np.linspace(-4, 4, 17), np.r_[0, 1e-6, 1e-3, np.geomspace(0.01, 1e4, 25)])
    got = expect1(lambda u: erf(a * u), mean, var)
    np.testing.assert_allclose(got, erf(a * mean / np.sqrt(1 + 2 * a * a * var)), rtol=0, atol=TOL_ERF)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.5, 2.0), (3.0, 3.0)])
def test_expect2_matches_erf_arcsin_closed_form_on_a_grid(a, b):
    from scipy.special import erf

    rho, var = np.meshgrid(np.r_[np.linspace(-1, 1, 21), RHOS], np.r_[1e-6, 1e-3, np.geomspace(0.01, 1e4, 13)])
    got = expect2(lambda u: erf(a * u), lambda u: erf(b * u), 0.0, var, rho * var)
    exact = 2 / np.pi * np.arcsin(2 * a * b * rho * var / np.sqrt((1 + 2 * a * a * var) * (1 + 2 * b * b * var)))
    np.testing.assert_allclose(got, exact, rtol=0, atol=TOL_ERF)


# ---- exact identities, shapes, tuples, errors
def test_zero_variance_gives_f_of_mean():
    mean = np.linspace(-4, 4, 9)
    for f in NP.values():
        np.testing.assert_allclose(expect1(f, mean, 0.0), f(mean), rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(expect2(f, f, mean, 0.0, 0.0), f(mean) ** 2, rtol=1e-15, atol=1e-15)


def test_correlation_one_and_minus_one_reduce_to_one_dimensional_integrals():
    mean, var = np.meshgrid(np.linspace(-4, 4, 9), [1e-6, 0.5, 30.0, 100.0])
    f, g = NP["tanh"], NP["dsigmoid2"]
    np.testing.assert_allclose(expect2(f, g, mean, var, var), expect1(lambda u: f(u) * g(u), mean, var),
                               rtol=0, atol=TOL_IDENTITY)
    # rho = -1: u_b = -u_a at mean 0 (elsewhere f(u) g(2 mean - u) has two kinks, beyond expect1's one-kink rule;
    # the reference table covers rho = -1 at other means)
    np.testing.assert_allclose(expect2(f, g, 0.0, var, -var), expect1(lambda u: f(u) * g(-u), 0.0, var),
                               rtol=0, atol=TOL_IDENTITY)


def test_zero_correlation_factorizes():
    mean, var = np.meshgrid(np.linspace(-4, 4, 9), [1e-6, 0.5, 30.0, 100.0])
    f, g = NP["sigmoid2"], NP["utanh"]
    np.testing.assert_allclose(expect2(f, g, mean, var, 0.0), expect1(f, mean, var) * expect1(g, mean, var),
                               rtol=TOL_IDENTITY, atol=0)


def test_arguments_broadcast_to_any_shape():
    mean, var, cov = np.linspace(-1, 1, 3)[:, None, None], np.array([0.5, 20.0])[None, :, None], 0.3
    got = expect2(NP["tanh"], NP["sigmoid"], mean, var, cov * np.ones((1, 1, 4)))
    assert got.shape == (3, 2, 4) and expect1(np.tanh, mean, var).shape == (3, 2, 1)
    assert got[2, 1, 3] == pytest.approx(expect2(NP["tanh"], NP["sigmoid"], 1.0, 20.0, 0.3), abs=1e-15)
    assert np.ndim(expect1(np.tanh, 0.3, 2.0)) == 0 and expect1(np.tanh, np.zeros((0, 3)), 1.0).shape == (0, 3)


def test_one_point_at_a_time_matches_mpmath_and_the_batched_rule():
    """A search evaluates one point at a time, through a scalar path (gaussian._rule1_point): the same nodes as
    in a batch, so the same values, and mpmath's across the box, at its edges (var 0, the kink outside the
    window, the largest graded sigma) and with NaN flowing through."""
    points = [(m, v) for _, m, v in _box_1d(24, seed=5)] + [(0.3, 0.0), (-4.0, 1e-6), (9.0, 0.05), (0.0, 1e4)]
    mean, var = np.array(points).T
    batched = expect1(NP["sigmoid2"], mean, var)
    for i, (m, v) in enumerate(points):
        one = expect1(NP["sigmoid2"], np.array([m]), np.array([v]))
        assert one[0] == batched[i], (m, v)  # the rule is the batch's, node for node
        ref = float(expect1_mp(MP_FUNCTIONS["sigmoid2"], m, v))
        assert abs(one[0] - ref) <= TOL_VS_MP * ref, (m, v)
    assert np.isnan(expect1(np.tanh, np.array([np.nan]), np.array([1.0]))).all()
    assert np.isnan(expect1(np.tanh, np.array([0.5]), np.array([np.nan]))).all()


def test_tuple_valued_f_returns_one_expectation_per_component():
    mean, var = np.linspace(-4, 4, 7), np.geomspace(1e-3, 100, 7)
    tanh_mean, second_moment = expect1(lambda u: (np.tanh(u), u * u), mean, var)
    np.testing.assert_allclose(second_moment, mean**2 + var, rtol=1e-13)
    np.testing.assert_array_equal(tanh_mean, expect1(np.tanh, mean, var))


def test_negative_variance_is_a_hyperparameter_error():
    with pytest.raises(HyperparameterError, match="var must be >= 0"):
        expect1(np.tanh, [0.0, 1.0], [1.0, -0.5])
    with pytest.raises(HyperparameterError, match="var must be >= 0"):
        expect2(np.tanh, np.tanh, 0.0, -1.0, 0.0)
    assert expect1(np.tanh, 1.0, -1e-15) == pytest.approx(np.tanh(1.0), abs=1e-15)  # rounding: clipped to 0


def test_correlation_beyond_one_is_a_hyperparameter_error_but_rounding_is_clipped():
    with pytest.raises(HyperparameterError, match=r"\|cov\| must be <= var"):
        expect2(np.tanh, np.tanh, 0.0, 1.0, [0.5, 1.01])
    assert expect2(np.tanh, np.tanh, 0.2, 4.0, 4.0 * (1 + 1e-14)) == expect2(np.tanh, np.tanh, 0.2, 4.0, 4.0)


def test_nonfinite_inputs_give_nan_not_an_exception():
    # numeric failure on a grid is a status per point, never an exception (errors.py): NaN must flow through
    got1 = expect1(np.tanh, [np.nan, 0.5, 0.5], [1.0, np.nan, 2.0])
    got2 = expect2(np.tanh, np.tanh, [np.nan, 0.5, 0.5], [1.0, 2.0, 2.0], [0.5, np.nan, 1.0])
    assert np.isnan(got1[:2]).all() and np.isnan(got2[:2]).all() and np.isfinite(got1[2]) and np.isfinite(got2[2])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("backend", ["numpy", "cupy"])
def test_backends_agree(backend):
    xp = get_xp(backend)
    fx = xp_functions(xp)
    rng = np.random.default_rng(3)
    mean, var, rho = rng.uniform(-4, 4, 500), 10 ** rng.uniform(-6, 2, 500), rng.uniform(-1, 1, 500)
    got1 = expect1(fx["tanh2"], xp.asarray(mean), xp.asarray(var))  # xp inferred from the inputs
    got2 = expect2(fx["erf2"], fx["dsigmoid2"], mean, var, rho * var, xp=xp)  # xp given, inputs from the host
    assert array_module(got1) is xp and array_module(got2) is xp
    np.testing.assert_allclose(to_numpy(got1), expect1(NP["tanh2"], mean, var), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
        to_numpy(got2), expect2(NP["erf2"], NP["dsigmoid2"], mean, var, rho * var), rtol=1e-13, atol=1e-15
    )
