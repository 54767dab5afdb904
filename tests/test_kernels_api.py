"""fastem.kernels, the public backend API, against NumPy references: every dtype and layout,
zero rows, one component, all -inf rows, and clear errors at the boundary."""
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import bernoulli, poisson
from test_kernels import random_params

from fastem import kernels
from fastem.families.expfam import Bernoulli, ExpFamParams, Poisson, ProductFamily
from fastem.families.gaussian import GaussianFamily
from fastem.latent.mixture import MixtureParams

DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def layouts(a):
    """The same values as a C-ordered array, an F-ordered array and a strided view."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    wide[:, ::2] = a
    return {"C": np.ascontiguousarray(a), "F": np.asfortranarray(a), "view": wide[:, ::2]}


def reference_log_prob(X, means, chol, covariance_type):
    """log N(x_i | mu_k, Sigma_k) from precision Cholesky factors, by direct NumPy."""
    k, d = means.shape
    full = {"full": lambda: chol, "tied": lambda: np.broadcast_to(chol, (k, d, d)),
            "diag": lambda: np.stack([np.diag(c) for c in chol]),
            "spherical": lambda: chol[:, None, None] * np.eye(d)}[covariance_type]()
    X = X.astype(np.float64)
    y = np.einsum("nd,kde->nke", X, full) - np.einsum("kd,kde->ke", means, full)
    log_det = np.log(np.diagonal(full, axis1=1, axis2=2)).sum(axis=1)
    return log_det - 0.5 * d * np.log(2 * np.pi) - 0.5 * (y**2).sum(axis=2)


def reference_statistics(X, resp, w, center, covariance_type):
    """nk, first and second moments about ``center`` by direct NumPy."""
    r = resp * w[:, None]
    diff = X.astype(np.float64)[None] - center[:, None]
    second = np.einsum("nk,kni,knj->kij", r, diff, diff)
    if covariance_type in ("diag", "spherical"):
        second = np.diagonal(second, axis1=1, axis2=2)
    return r.sum(axis=0), np.einsum("nk,kni->ki", r, diff), second


def problem(covariance_type, dtype, n=200, k=3, d=3, seed=0):
    rng = np.random.RandomState(seed)
    params = random_params(covariance_type, k, d, rng)
    X = (2 * rng.randn(n, d)).astype(dtype)
    return X, params


# ----------------------------------------------------------------------- normalize_log_rows
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
@pytest.mark.parametrize("k", [1, 5])
def test_normalize_log_rows_matches_numpy(dtype, layout, k):
    a = (30 * np.random.RandomState(k).randn(300, k)).astype(dtype)
    resp, lse = kernels.normalize_log_rows(layouts(a)[layout], n_threads=2)
    expected = logsumexp(a.astype(np.float64), axis=1)
    np.testing.assert_allclose(lse, expected, rtol=1e-13)
    np.testing.assert_allclose(resp, np.exp(a - expected[:, None]), rtol=1e-12, atol=1e-300)
    assert resp.dtype == lse.dtype == np.float64 and resp.flags.c_contiguous


def test_normalize_log_rows_in_place_and_all_minus_inf_rows():
    a = np.array([[0.0, np.log(3.0)], [-np.inf, -np.inf], [-1000.0, -np.inf]])
    lse = np.empty(3)
    resp, lse_returned = kernels.normalize_log_rows(a, out=a, lse_out=lse)
    assert resp is a and lse_returned is lse
    np.testing.assert_allclose(a, [[0.25, 0.75], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(lse, [np.log(4.0), -np.inf, -1000.0])


def test_normalize_log_rows_zero_rows():
    resp, lse = kernels.normalize_log_rows(np.empty((0, 4), dtype=np.float32))
    assert resp.shape == (0, 4) and lse.shape == (0,)


@pytest.mark.parametrize("bad, match", [
    (dict(log_prob=np.zeros(3)), "log_prob must be 2-D"),
    (dict(log_prob=np.zeros((3, 2), dtype=np.int64)), "log_prob must be float32 or float64"),
    (dict(log_prob=np.zeros((3, 0))), "at least one column"),
    (dict(out=np.zeros((3, 2), dtype=np.float32)), "out must be a writeable C-contiguous float64"),
    (dict(out=np.zeros((2, 3))), r"out must be .* shape \(3, 2\)"),
    (dict(out=np.zeros((3, 2), order="F")), r"got ndarray float64 \(3, 2\), not C-contiguous"),
    (dict(out=np.zeros((3, 4))[:, ::2]), "not C-contiguous"),
    (dict(out=np.broadcast_to(np.zeros(2), (3, 2))), "not C-contiguous, read-only"),
    (dict(out=np.zeros((3, 2)).view()), r"\(3, 2\), read-only$"),
    (dict(lse_out=np.zeros(4)), "lse_out must be"),
])
def test_normalize_log_rows_errors(bad, match):
    args = dict(log_prob=np.zeros((3, 2)))
    args.update(bad)
    if "read-only$" in match:
        args["out"].setflags(write=False)
    with pytest.raises(ValueError, match=match):
        kernels.normalize_log_rows(args.pop("log_prob"), **args)


# ------------------------------------------------------------------------ gaussian_log_prob
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
def test_gaussian_log_prob_matches_numpy(covariance_type, dtype, layout):
    X, p = problem(covariance_type, dtype)
    out = kernels.gaussian_log_prob(layouts(X)[layout], p.means, p.precisions_cholesky,
                                    covariance_type, n_threads=2, chunk_size=16)
    expected = reference_log_prob(X, p.means, p.precisions_cholesky, covariance_type)
    np.testing.assert_allclose(out, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    weighted = kernels.gaussian_log_prob(X, p.means, p.precisions_cholesky, covariance_type,
                                         weights=p.weights, out=np.empty_like(out))
    np.testing.assert_allclose(weighted, expected + np.log(p.weights), rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_log_prob_one_component_and_zero_rows(covariance_type, dtype):
    X, p = problem(covariance_type, dtype, k=1)
    out = kernels.gaussian_log_prob(X, p.means, p.precisions_cholesky, covariance_type)
    expected = reference_log_prob(X, p.means, p.precisions_cholesky, covariance_type)
    np.testing.assert_allclose(out, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    empty = kernels.gaussian_log_prob(X[:0], p.means, p.precisions_cholesky, covariance_type)
    assert empty.shape == (0, 1)


def test_gaussian_log_prob_zero_weight_is_minus_inf():
    X, p = problem("diag", np.float64)
    out = kernels.gaussian_log_prob(X, p.means, p.precisions_cholesky, "diag",
                                    weights=[0.0, 1.0, 1.0])
    assert np.all(out[:, 0] == -np.inf) and np.isfinite(out[:, 1:]).all()


@pytest.mark.parametrize("dtype, far", [(np.float64, 1e200), (np.float32, 1e30)])
def test_gaussian_log_prob_far_row_is_minus_inf_not_nan(covariance_type, dtype, far):
    """Finite rows so far away that their features overflow give -inf for every component."""
    X, p = problem(covariance_type, dtype, n=3, d=2)
    X[1] = far
    X[2] = [-far, far]
    out = kernels.gaussian_log_prob(X, p.means, p.precisions_cholesky, covariance_type,
                                    weights=p.weights)
    assert np.isfinite(out[0]).all()
    np.testing.assert_array_equal(out[1:], -np.inf)


@pytest.mark.parametrize("change, match", [
    (dict(X=np.zeros((5, 3), dtype=np.int32)), "X must be float32 or float64"),
    (dict(X=np.zeros(3)), "X must be 2-D"),
    (dict(means=np.zeros((3, 2))), r"means must have shape \(n_components, 3\)"),
    (dict(precisions_cholesky=np.ones((3, 3))), r"precisions_cholesky must have shape \(3, 3, 3\)"),
    (dict(covariance_type="banana"), "covariance_type must be one of"),
    (dict(weights=[1.0, -1.0, 1.0]), "weights must be"),
    (dict(means=np.full((3, 3), np.nan)), "means contains NaN"),
    (dict(out=np.zeros((5, 3), dtype=np.float32)), "out must be"),
    (dict(chunk_size=0), "chunk_size must be a positive integer"),
    (dict(n_threads=0), "n_threads must be a positive integer"),
])
def test_gaussian_log_prob_errors(change, match):
    args = dict(X=np.zeros((5, 3)), means=np.zeros((3, 3)),
                precisions_cholesky=np.stack([np.eye(3)] * 3), covariance_type="full")
    args.update(change)
    with pytest.raises(ValueError, match=match):
        kernels.gaussian_log_prob(args.pop("X"), args.pop("means"),
                                  args.pop("precisions_cholesky"), args.pop("covariance_type"),
                                  **args)


# ---------------------------------------------------------------------- gaussian_statistics
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
@pytest.mark.parametrize("k", [1, 3])
def test_gaussian_statistics_match_numpy(covariance_type, dtype, layout, k):
    X, p = problem(covariance_type, dtype, k=k)
    rng = np.random.RandomState(1)
    resp = rng.dirichlet(np.ones(k), size=X.shape[0])
    resp[7] = 0.0  # a row the caller assigns to no component counts nowhere
    w = rng.uniform(0.5, 2, X.shape[0])
    stats = kernels.gaussian_statistics(layouts(X)[layout], layouts(resp)[layout],
                                        covariance_type, sample_weight=w, center=p.means,
                                        n_threads=2, chunk_size=32)
    center = p.means.astype(dtype).astype(np.float64)
    np.testing.assert_array_equal(stats.center, center)
    tol = TOLERANCE[dtype]
    for got, want in zip(stats, reference_statistics(X, resp, w, center, covariance_type)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * X.shape[0])


def test_gaussian_statistics_default_center_is_origin_and_threads_do_not_matter():
    X, _ = problem("full", np.float64, n=1000)
    resp = np.random.RandomState(2).dirichlet(np.ones(3), size=1000)
    one = kernels.gaussian_statistics(X, resp, "full", n_threads=1, chunk_size=64)
    two = kernels.gaussian_statistics(X, resp, "full", n_threads=2, chunk_size=64)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.center, 0.0)
    np.testing.assert_allclose(one.second, np.einsum("nk,ni,nj->kij", resp, X, X), rtol=1e-12)


def test_gaussian_statistics_zero_rows_one_component_and_zero_weights():
    X, _ = problem("diag", np.float32)
    stats = kernels.gaussian_statistics(X[:0], np.empty((0, 1)), "diag")
    assert stats.nk.shape == (1,) and stats.second.shape == (1, 3)
    assert not np.any(stats.nk) and not np.any(stats.second)
    zero = kernels.gaussian_statistics(X, np.ones((X.shape[0], 1)), "diag",
                                       sample_weight=np.zeros(X.shape[0]))
    assert not np.any(zero.nk) and not np.any(zero.first)


@pytest.mark.parametrize("change, match", [
    (dict(resp=np.ones((7, 2))), "resp has 7 rows, X has 5"),
    (dict(resp=np.ones((5, 2), dtype=np.int64)), "resp must be float32 or float64"),
    (dict(resp=np.full((5, 2), -0.5)), "resp must be finite and non-negative; a value in rows 0 to 4"),
    (dict(center=np.zeros(4)), r"center must have shape \(3,\) or \(2, 3\)"),
    (dict(sample_weight=-np.ones(5)), "sample_weight contains negative values"),
    (dict(covariance_type="diagonal"), "covariance_type must be one of"),
])
def test_gaussian_statistics_errors(change, match):
    args = dict(X=np.zeros((5, 3)), resp=np.ones((5, 2)), covariance_type="full")
    args.update(change)
    with pytest.raises(ValueError, match=match):
        kernels.gaussian_statistics(args.pop("X"), args.pop("resp"), args.pop("covariance_type"),
                                    **args)


# ----------------------------------------------------------------- E-step and M-step
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
@pytest.mark.parametrize("k", [1, 3])
def test_e_step_then_m_step_match_numpy(covariance_type, dtype, layout, k):
    X, p = problem(covariance_type, dtype, k=k)
    w = np.random.RandomState(3).uniform(0, 2, X.shape[0])
    reg = 1e-3
    e = kernels.gaussian_e_step(layouts(X)[layout], p.weights, p.means, p.precisions_cholesky,
                                covariance_type, sample_weight=w, chunk_size=32)
    log_joint = reference_log_prob(X, p.means, p.precisions_cholesky,
                                   covariance_type) + np.log(p.weights)
    log_px = logsumexp(log_joint, axis=1)
    tol = TOLERANCE[dtype]
    assert e.log_likelihood == pytest.approx(w @ log_px, rel=tol)
    resp = np.exp(log_joint - log_px[:, None])
    np.testing.assert_allclose(e.statistics.nk, (w[:, None] * resp).sum(0), rtol=tol)

    new = kernels.gaussian_m_step(e.statistics, covariance_type, reg_covar=reg)
    r = w[:, None] * resp
    nk = r.sum(axis=0)
    means = r.T @ X.astype(np.float64) / nk[:, None]
    diff = X.astype(np.float64)[None] - means[:, None]
    full = np.einsum("nk,kni,knj->kij", r, diff, diff) / nk[:, None, None] + reg * np.eye(3)
    expected = {"full": full, "tied": (full * nk[:, None, None]).sum(0) / nk.sum(),
                "diag": np.diagonal(full, axis1=1, axis2=2),
                "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]
    np.testing.assert_allclose(new.weights, nk / nk.sum(), rtol=tol)
    np.testing.assert_allclose(new.means, means, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_allclose(new.covariances, expected, rtol=100 * tol, atol=100 * tol)
    assert new.precisions_cholesky.shape == new.covariances.shape and new.empty.size == 0


def test_e_step_with_an_all_minus_inf_row_and_zero_rows():
    X = np.array([[0.0, 0.0], [1e200, 1e200]])
    means, chol = np.zeros((2, 2)), np.ones((2, 2))
    e = kernels.gaussian_e_step(X, [1.0, 0.0], means, chol, "diag")
    assert e.log_likelihood == -np.inf
    assert not any(np.isnan(a).any() for a in e.statistics)
    np.testing.assert_array_equal(e.statistics.nk, [1.0, 0.0])
    empty = kernels.gaussian_e_step(X[:0], [0.5, 0.5], means, chol, "diag")
    assert empty.log_likelihood == 0.0 and not np.any(empty.statistics.nk)
    with pytest.raises(ValueError, match="no data"):
        kernels.gaussian_m_step(empty.statistics, "diag")


def test_m_step_reports_empty_components_and_checks_shapes():
    X, p = problem("full", np.float64)
    resp = np.zeros((X.shape[0], 2))
    resp[:, 0] = 1.0
    stats = kernels.gaussian_statistics(X, resp, "full", center=X.mean(axis=0))
    new = kernels.gaussian_m_step(stats, "full")
    np.testing.assert_array_equal(new.empty, [1])
    assert np.isfinite(new.covariances).all()
    with pytest.raises(ValueError, match=r"statistics.second must have shape \(2, 3\)"):
        kernels.gaussian_m_step(stats, "diag")
    with pytest.raises(ValueError, match="reg_covar"):
        kernels.gaussian_m_step(stats, "full", reg_covar=-1.0)


def test_pack_gaussian_layout_is_typed_and_contiguous():
    _, p = problem("tied", np.float32)
    packed = kernels.pack_gaussian(p.weights, p.means, p.precisions_cholesky, "tied", np.float32)
    assert isinstance(packed, kernels.KernelParams)
    for name in ("proj", "center", "pivot"):
        array = getattr(packed, name)
        assert array.dtype == packed.dtype and array.flags.c_contiguous
    assert packed.dtype in (np.float32, np.float64)
    assert packed.log_norm.dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        kernels.pack_gaussian(p.weights, p.means, p.precisions_cholesky, "tied", np.int32)


# ------------------------------------------------------------------ any family
def count_problem(k, dtype, n=400, seed=3):
    """Poisson and Bernoulli columns: data, family, parameters and log p(x, z = k) by scipy."""
    rng = np.random.default_rng(seed)
    family = ProductFamily([Poisson(), Bernoulli()])
    params = MixtureParams(rng.dirichlet(np.ones(k)), ExpFamParams(
        [rng.uniform(1, 8, (k, 1)), rng.uniform(0.1, 0.9, (k, 1))]))
    X = np.column_stack([rng.poisson(4, n), rng.integers(0, 2, n)]).astype(dtype)
    joint = (np.log(params.weights) + poisson.logpmf(X[:, :1], params.columns[0][:, 0])
             + bernoulli.logpmf(X[:, 1:], params.columns[1][:, 0]))
    return X, family, params, joint


def reference_count_m_step(X, r):
    """Weights, Poisson rates and Bernoulli probabilities from weighted responsibilities."""
    nk = r.sum(axis=0)
    return nk / nk.sum(), r.T @ X.astype(np.float64) / nk[:, None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
@pytest.mark.parametrize("k", [1, 3])
def test_family_functions_match_scipy(dtype, layout, k):
    """family_e_step / family_predict / family_m_step against scipy.stats and NumPy."""
    X, family, params, joint = count_problem(k, dtype)
    Xl, tol = layouts(X)[layout], TOLERANCE[dtype]
    log_px = logsumexp(joint, axis=1)
    resp = np.exp(joint - log_px[:, None])
    w = np.random.default_rng(4).uniform(0, 2, X.shape[0])
    e = kernels.family_e_step(Xl, family, params, sample_weight=w, n_threads=2, chunk_size=32)
    assert e.log_likelihood == pytest.approx(w @ log_px, rel=tol)
    log_prob, r = kernels.family_predict(Xl, family, params, n_threads=2, chunk_size=32)
    np.testing.assert_allclose(log_prob, log_px, rtol=tol)
    np.testing.assert_allclose(r, resp, atol=tol)
    new, empty = kernels.family_m_step(family, e)
    weights, means = reference_count_m_step(X, w[:, None] * resp)
    assert empty.size == 0
    np.testing.assert_allclose(new.weights, weights, rtol=tol)
    np.testing.assert_allclose(np.hstack(new.columns), means, rtol=10 * tol)


def test_family_functions_zero_rows():
    X, family, params, _ = count_problem(3, np.float32)
    e = kernels.family_e_step(X[:0], family, params)
    assert e.log_likelihood == 0.0 and not np.any(e.statistics)
    log_prob, resp = kernels.family_predict(X[:0], family, params)
    assert log_prob.shape == (0,) and resp.shape == (0, 3)
    with pytest.raises(ValueError, match="no data"):
        kernels.family_m_step(family, e)
    zero_weights = kernels.family_e_step(X, family, params, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="no data"):
        kernels.family_m_step(family, zero_weights)


def test_family_row_outside_the_support_gets_zero_posterior():
    """A negative count has probability 0 under every Poisson component: -inf, never NaN."""
    X, family, params, joint = count_problem(3, np.float64, n=50)
    X[0, 0] = -1.0
    log_prob, resp = kernels.family_predict(X, family, params)
    assert log_prob[0] == -np.inf and not np.any(resp[0])
    np.testing.assert_allclose(log_prob[1:], logsumexp(joint[1:], axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp[1:].sum(axis=1), 1.0)
    e = kernels.family_e_step(X, family, params)
    assert e.log_likelihood == -np.inf and not np.isnan(e.statistics[1:]).any()
    new, _ = kernels.family_m_step(family, e)
    assert np.isfinite(new.weights).all() and all(np.isfinite(c).all() for c in new.columns)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "view"])
def test_family_statistics_match_numpy(dtype, layout):
    """Given responsibilities (an all-zero row included) and weights, through the M-step."""
    X, family, params, _ = count_problem(3, dtype)
    rng = np.random.default_rng(5)
    resp = rng.dirichlet(np.ones(3), size=X.shape[0])
    resp[2] = 0.0
    w = rng.uniform(0.5, 2, X.shape[0])
    s = kernels.family_statistics(layouts(X)[layout], layouts(resp.astype(dtype))[layout],
                                  family, params, sample_weight=w, n_threads=2, chunk_size=32)
    r = w[:, None] * resp.astype(dtype)
    np.testing.assert_allclose(s.statistics[1:5], [w.sum(), *r.sum(axis=0)], rtol=1e-12)
    assert s.log_likelihood == 0.0
    new, empty = kernels.family_m_step(family, s)
    weights, means = reference_count_m_step(X, r)
    assert empty.size == 0
    np.testing.assert_allclose(new.weights, weights, rtol=1e-12)
    np.testing.assert_allclose(np.hstack(new.columns), means, rtol=1e-12)
    # with the E-step's own posteriors, the same statistics as the fused E-step (float32 data:
    # to float32 rounding, the E-step's sums being float32 per chunk, expfam.pyx)
    _, posterior = kernels.family_predict(X, family, params)
    e = kernels.family_e_step(X, family, params, sample_weight=w)
    s = kernels.family_statistics(X, posterior, family, params, sample_weight=w)
    rtol = 1e-10 if X.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(s.statistics[1:], e.statistics[1:], rtol=rtol)


def test_family_statistics_of_a_gaussian_family_match_gaussian_m_step(covariance_type):
    X, p = problem(covariance_type, np.float64)
    resp = np.random.RandomState(6).dirichlet(np.ones(3), size=X.shape[0])
    s = kernels.family_statistics(X, resp, GaussianFamily(covariance_type), p)
    new, empty = kernels.family_m_step(GaussianFamily(covariance_type, reg_covar=1e-3), s)
    want = kernels.gaussian_m_step(kernels.gaussian_statistics(X, resp, covariance_type),
                                   covariance_type, reg_covar=1e-3)
    assert empty.size == 0
    np.testing.assert_allclose(new.weights, want.weights, rtol=1e-10)
    np.testing.assert_allclose(new.means, want.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.covariances, want.covariances, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("resp, match", [
    (np.ones((400, 2)), r"resp must have shape \(400, 3\), got \(400, 2\)"),
    (np.ones((399, 3)), r"resp must have shape \(400, 3\)"),
    (np.ones(400), "resp must be 2-D"),
    (np.full((400, 3), np.nan), "resp must be finite and non-negative"),
    (np.full((400, 3), np.inf), "resp must be finite and non-negative"),
    (np.full((400, 3), -1.0), "resp must be finite and non-negative"),
])
def test_family_statistics_errors(resp, match):
    X, family, params, _ = count_problem(3, np.float64)
    with pytest.raises(ValueError, match=match):
        kernels.family_statistics(X, resp, family, params)


@pytest.mark.parametrize("call", [
    lambda X, f, p: kernels.family_e_step(X, f, p),
    lambda X, f, p: kernels.family_predict(X, f, p),
    lambda X, f, p: kernels.family_statistics(X, np.ones((len(X), 3)), f, p),
])
def test_family_functions_check_the_number_of_columns(call):
    X, family, params, _ = count_problem(3, np.float64)
    with pytest.raises(ValueError, match="X has 1 columns, the family expects 2"):
        call(X[:, :1], family, params)
    with pytest.raises(ValueError, match="X has 3 columns, the family expects 2"):
        call(np.hstack([X, X[:, :1]]), family, params)
