"""Compiled kernels against a small NumPy reference, for every kernel kind and dtype."""
from collections import defaultdict

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from fastem.drivers.local import LocalDriver
from fastem.families.gaussian import (
    KIND_DIAG,
    KIND_EXPFAM_DIAG,
    KIND_EXPFAM_FULL,
    KIND_EXPFAM_SPHERICAL,
    KIND_EXPFAM_TIED,
    KIND_FULL,
    KIND_FULL_CENTRED,
    KIND_TIED,
    KIND_TIED_CENTRED,
    GaussianFamily,
    GaussianParams,
    covariance_shape,
)
from fastem.latent.mixture import Mixture, MixtureParams

MIXTURE = Mixture()


def gaussian(covariance_type, weights, means, covariances):
    """Mixture parameters of Gaussian components."""
    return MixtureParams(weights, GaussianParams.from_covariances(covariance_type, means,
                                                                  covariances))

TOLERANCE = {np.float64: 1e-11, np.float32: 2e-4}


def random_params(covariance_type, k, d, rng):
    shape = covariance_shape(covariance_type, k, d)
    if covariance_type in ("full", "tied"):
        a = rng.randn(*shape[:-2], d, d) * 0.3 + np.eye(d)
        cov = a @ np.swapaxes(a, -1, -2)
    else:
        cov = rng.uniform(0.5, 2.0, size=shape)
    weights = rng.dirichlet(np.ones(k))
    return gaussian(covariance_type, weights, 2 * rng.randn(k, d), cov)


def reference_log_joint(X, params):
    """log p(x, z = k) by scipy.stats, one component at a time."""
    t, k = params.covariance_type, params.n_components
    columns = []
    for c in range(k):
        cov = {"full": lambda: params.covariances[c], "tied": lambda: params.covariances,
               "diag": lambda: np.diag(params.covariances[c]),
               "spherical": lambda: params.covariances[c] * np.eye(X.shape[1])}[t]()
        columns.append(np.log(params.weights[c]) + np.atleast_1d(multivariate_normal(params.means[c], cov)
                       .logpdf(X.astype(np.float64))))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, k", [(1, 1), (37, 1), (257, 4), (1000, 7)])
def test_fused_pass_matches_reference(covariance_type, dtype, n, k):
    rng = np.random.RandomState(n + k)
    d = 3
    params = random_params(covariance_type, k, d, rng)
    X = (rng.randn(n, d) * 2).astype(dtype)
    w = rng.uniform(0, 2, size=n)
    reg = 1e-3
    family = GaussianFamily(covariance_type, reg_covar=reg)
    packed = MIXTURE.pack(family, params, dtype)
    driver = LocalDriver(X, sample_weight=w, chunk_size=16, n_threads=2)
    stats, worst = driver.accumulate(family, packed)

    log_joint = reference_log_joint(X, params)
    log_px = np.logaddexp.reduce(log_joint, axis=1)
    resp = np.exp(log_joint - log_px[:, None]) * w[:, None]
    tol = TOLERANCE[dtype]
    assert stats[0] == pytest.approx(w @ log_px, rel=tol)
    assert stats[1] == pytest.approx(w.sum(), rel=1e-14)
    np.testing.assert_allclose(stats[2:2 + k], resp.sum(axis=0), rtol=tol, atol=tol)
    assert int(worst[1]) == np.argmin(np.where(w > 0, log_px, np.inf))

    # the M-step turns the statistics into weighted moments
    new, lost = MIXTURE.m_step(family, stats, packed)
    assert lost.size == 0
    nk = resp.sum(axis=0)
    means = resp.T @ X.astype(np.float64) / nk[:, None]
    np.testing.assert_allclose(new.means, means, rtol=tol * 10, atol=tol * 10)
    diff = X[None, :, :].astype(np.float64) - means[:, None, :]
    full = np.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None] + reg * np.eye(d)
    expected = {"full": full, "tied": (full * nk[:, None, None]).sum(0) / nk.sum(),
                "diag": np.diagonal(full, axis1=1, axis2=2),
                "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]
    np.testing.assert_allclose(new.covariances, expected, rtol=tol * 100, atol=tol * 100)

    out = {"log_prob": np.empty(n), "resp": np.empty((n, k)), "labels": np.empty(n, np.intp)}
    driver.predict(family, packed, out)
    np.testing.assert_allclose(out["log_prob"], log_px, rtol=tol, atol=tol)
    np.testing.assert_allclose(out["resp"], np.exp(log_joint - log_px[:, None]), atol=tol)
    np.testing.assert_array_equal(out["labels"], log_joint.argmax(axis=1))


def test_expfam_form_used_only_where_accurate(covariance_type):
    rng = np.random.RandomState(0)
    params = random_params(covariance_type, 3, 2, rng)
    family = GaussianFamily(covariance_type)
    expfam = {"full": KIND_EXPFAM_FULL, "tied": KIND_EXPFAM_TIED, "diag": KIND_EXPFAM_DIAG,
              "spherical": KIND_EXPFAM_SPHERICAL}[covariance_type]
    exact = {"full": KIND_FULL, "tied": KIND_TIED}.get(covariance_type, KIND_DIAG)
    assert MIXTURE.pack(family, params, np.float64).kind == expfam
    far = gaussian(covariance_type, params.weights,
                                          params.means * 1e6, params.covariances)
    assert MIXTURE.pack(family, far, np.float64).kind == exact
    single = MIXTURE.pack(family, params, np.float32)  # float32 data, components near the centre
    assert single.kind == expfam and single.dtype == np.float32
    spread = gaussian(  # 100x further: float32 rounding > 1e-3 nats
        covariance_type, params.weights, params.means * 100, params.covariances)
    window = gaussian(  # too spread for expfam, fine for float32 exact
        covariance_type, np.array([0.5, 0.5]), np.array([[-700.0], [700.0]]),
        np.ones(covariance_shape(covariance_type, 2, 1)))
    # float32 full and tied data: expfam in float64, then centred per component in float32
    # once expfam fails in float64 too; diagonal ones: expfam in float64, then exact in float32
    # where whitened coordinates |mu| |L| stay resolvable (window), else float64
    centred = {"full": KIND_FULL_CENTRED, "tied": KIND_TIED_CENTRED}.get(covariance_type)
    expected = {
        "spread": (expfam, np.float64),
        "far": (centred, np.float32) if centred else (exact, np.float64),
        "window": (centred or exact, np.float32)}
    for name, p in (("spread", spread), ("far", far), ("window", window)):
        packed = MIXTURE.pack(family, p, np.float32)
        assert (packed.kind, packed.dtype) == expected[name], name


def test_nearly_collapsed_float32_component_runs_in_float64(covariance_type):
    """A component squeezed to 1e-11 variance (seen in a fit) must not be whitened in float32
    about the origin (diag, spherical: float64); the full and tied kinds centred per component
    in float32 stay accurate there (rows of the squeezed components, on the same float32
    values: within the 1e-3 nats bound of float64)."""
    from fastem import kernels

    rng = np.random.RandomState(0)
    params = random_params(covariance_type, 3, 2, rng)
    squeezed = gaussian(covariance_type, params.weights, params.means,
                                               params.covariances * 1e-11)
    packed = MIXTURE.pack(GaussianFamily(covariance_type), squeezed, np.float32)
    if covariance_type in ("diag", "spherical"):
        assert packed.dtype == np.float64
        return
    assert packed.kind in (KIND_FULL_CENTRED, KIND_TIED_CENTRED) and packed.dtype == np.float32
    cov = np.broadcast_to(squeezed.covariances, (3, 2, 2))
    X = np.vstack([rng.multivariate_normal(m, c, 50) for m, c in zip(squeezed.means, cov)])
    X32 = X.astype(np.float32)
    args = (squeezed.means, squeezed.precisions_cholesky, covariance_type)
    ours = kernels.gaussian_log_prob(X32, *args)
    exact = kernels.gaussian_log_prob(X32.astype(np.float64), *args)
    own = np.repeat(np.arange(3), 50)
    assert np.abs(ours - exact)[np.arange(150), own].max() < 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_kernel_kind_gives_the_same_statistics(covariance_type, dtype, monkeypatch):
    """Force the exact kernels (bound 0) and compare them with the expfam ones (whose tied
    and spherical kinds pool the second moments over components or dimensions), with sample
    weights, zeros among them."""
    import fastem.families.gaussian as gaussian

    rng = np.random.RandomState(1)
    params = random_params(covariance_type, 4, 3, rng)
    X = (2 * rng.randn(500, 3)).astype(dtype)
    weights = rng.uniform(0, 2, 500) * (rng.rand(500) > 0.1)
    family = GaussianFamily(covariance_type)
    driver = LocalDriver(X, sample_weight=weights, chunk_size=64, n_threads=2)
    monkeypatch.setattr(gaussian, "EXPFAM_MAX_ERROR", defaultdict(lambda: 1.0))
    expfam = MIXTURE.pack(family, params, dtype)
    monkeypatch.setattr(gaussian, "EXPFAM_MAX_ERROR", defaultdict(float))
    exact = MIXTURE.pack(family, params, dtype)
    assert expfam.kind != exact.kind
    stats = [driver.accumulate(family, p)[0] for p in (expfam, exact)]
    results = [MIXTURE.m_step(family, s, p)[0] for s, p in zip(stats, (expfam, exact))]
    tol = TOLERANCE[dtype] * 100
    np.testing.assert_allclose(stats[0][0], stats[1][0], rtol=tol, err_msg="log-likelihood")
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(results[0], name), getattr(results[1], name),
                                   rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", ["expfam", "exact", "given responsibilities"])
def test_scratch_contents_never_reach_the_statistics(covariance_type, dtype, form, monkeypatch):
    """Every kernel kind must write all it reads: with NaN-filled scratch, every statistic is
    still finite. (float32 SYRK once added its unwritten triangle: a random overflow error.)"""
    import fastem.families.gaussian as gaussian

    rng = np.random.RandomState(2)
    params = random_params(covariance_type, 3, 4, rng)
    X = rng.randn(300, 4).astype(dtype)
    family = GaussianFamily(covariance_type)
    workspace = GaussianFamily.workspace
    monkeypatch.setattr(GaussianFamily, "workspace", lambda *a: tuple(
        np.full_like(w, np.nan) for w in workspace(*a)))
    monkeypatch.setattr(gaussian, "EXPFAM_MAX_ERROR", defaultdict(
        lambda: 1.0 if form == "expfam" else 0.0))
    driver = LocalDriver(X, chunk_size=64, n_threads=2)
    if form == "given responsibilities":
        resp = rng.dirichlet(np.ones(3), 300)
        stats, _ = driver.accumulate(family, family.pack_pivot(params.means, dtype),
                                     resp_fn=lambda start, block: resp[start:start + len(block)])
    else:
        stats, _ = driver.accumulate(family, MIXTURE.pack(family, params, dtype))
    assert np.isfinite(stats).all()


def test_all_minus_inf_row_gives_zero_posterior_and_minus_inf_density():
    params = gaussian("diag", np.array([1.0, 0.0]),
                                             np.zeros((2, 2)), np.ones((2, 2)))
    X = np.array([[0.0, 0.0], [1e200, 1e200]])
    family = GaussianFamily("diag")
    out = {"log_prob": np.empty(2), "resp": np.empty((2, 2)), "labels": np.empty(2, np.intp)}
    LocalDriver(X, n_threads=1).predict(family, MIXTURE.pack(family, params, np.float64), out)
    assert out["log_prob"][1] == -np.inf and np.isfinite(out["log_prob"][0])
    np.testing.assert_array_equal(out["resp"], [[1.0, 0.0], [0.0, 0.0]])
    assert not np.isnan(out["resp"]).any()
