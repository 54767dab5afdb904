"""log_density_block of the compiled families (the block skeleton's log-densities-only pass)
against NumPy/scipy references: every Gaussian covariance type and kernel kind, every
exponential-family column kind, float32 and float64, and 1 vs 2 threads bitwise."""
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats as st
from test_kernels import random_params

from fastem.families import gaussian
from fastem.families.expfam import (
    Bernoulli,
    Categorical,
    ExpFamParams,
    Exponential,
    Gamma,
    Normal,
    Poisson,
    ProductFamily,
)
from fastem.families.gaussian import GaussianFamily
from fastem.latent.mixture import Mixture, MixtureParams

MIXTURE = Mixture()

TOLERANCE = {np.float64: 1e-10, np.float32: 2e-3}
CHUNK = 16  # rows per chunk: several chunks per block, a short last one


def log_density(family, packed, X, n_threads, chunk_size=CHUNK):
    """The binding on fresh scratch, ``out`` filled with NaN first (every entry is written)."""
    n, k = X.shape[0], packed.log_norm.shape[0]
    work = family.workspace(packed, chunk_size, n_threads, max(1, -(-n // chunk_size)))
    out = np.full((n, k), np.nan)
    family.log_density_block(packed, X, chunk_size, n_threads, work, out)
    return out


def components_only(family, params, dtype):
    """The family's own packing, without the mixture's log-weights: component log-densities."""
    return family.pack(params.components, dtype, params.weights)


def gaussian_reference(X, params):
    """(n, K) log N(x_i | mu_k, Sigma_k) by scipy.stats."""
    t, d = params.covariance_type, X.shape[1]
    covs = {"full": lambda c: params.covariances[c], "tied": lambda c: params.covariances,
            "diag": lambda c: np.diag(params.covariances[c]),
            "spherical": lambda c: params.covariances[c] * np.eye(d)}[t]
    return np.stack([np.atleast_1d(st.multivariate_normal(params.means[c], covs(c))
                                   .logpdf(X.astype(np.float64)))
                     for c in range(params.n_components)], axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", ["expfam", "exact"])
def test_gaussian_log_density_block(covariance_type, form, dtype, monkeypatch):
    rng = np.random.RandomState(3)
    params = random_params(covariance_type, 5, 4, rng)
    X = (2 * rng.randn(203, 4)).astype(dtype)
    bound = 1.0 if form == "expfam" else 0.0  # the rounding bound that picks the kernel kind
    monkeypatch.setattr(gaussian, "EXPFAM_MAX_ERROR", defaultdict(lambda: bound))
    family = GaussianFamily(covariance_type)
    packed = MIXTURE.pack(family, params, dtype)
    expfam_kinds = (gaussian.KIND_EXPFAM_DIAG, gaussian.KIND_EXPFAM_FULL,
                    gaussian.KIND_EXPFAM_TIED, gaussian.KIND_EXPFAM_SPHERICAL)
    assert (packed.kind in expfam_kinds) == (form == "expfam")
    X = X.astype(packed.dtype)
    expected = gaussian_reference(X, params)
    tol = TOLERANCE[dtype]

    joint = log_density(family, packed, X, 2)  # log p(x, z = k) as packed
    np.testing.assert_allclose(joint, expected + np.log(params.weights), rtol=tol, atol=tol)
    pure = components_only(family, params, dtype)
    one, two = log_density(family, pure, X, 1), log_density(family, pure, X, 2)
    np.testing.assert_allclose(two, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(log_density(family, pure, X, 2, chunk_size=len(X) + 5), two)


def test_gaussian_log_density_block_checks_out():
    rng = np.random.RandomState(0)
    family = GaussianFamily("diag")
    packed = MIXTURE.pack(family, random_params("diag", 3, 2, rng), np.float64)
    work = family.workspace(packed, CHUNK, 1, 1)
    with pytest.raises(ValueError, match="shape"):
        family.log_density_block(packed, rng.randn(10, 2), CHUNK, 1, work, np.empty((10, 2)))
    family.log_density_block(packed, np.empty((0, 2)), CHUNK, 1, work, np.empty((0, 3)))


# Every column kind of the exponential-family kernel: IDENTITY (Bernoulli, Exponential),
# COUNT (Poisson), LOG (Gamma), CATEGORICAL, GAUSSIAN (Normal, far from 0: features centred).
COLUMNS = ["bernoulli", "exponential", "poisson", "gamma", "categorical", "normal"]


def product_table(rng, k, n):
    """A ProductFamily over every column kind, its parameters and data (float64)."""
    family = ProductFamily([Bernoulli(), Exponential(), Poisson(), Gamma(),
                            Categorical(n_categories=3), Normal()])
    theta = [rng.uniform(0.1, 0.9, (k, 1)), rng.uniform(0.3, 3.0, (k, 1)),
             rng.uniform(1.0, 6.0, (k, 1)),
             np.column_stack([rng.uniform(0.5, 5.0, k), rng.uniform(0.5, 2.0, k)]),
             rng.dirichlet(np.ones(3), size=k),
             np.column_stack([rng.normal(50.0, 2.0, k), rng.uniform(0.5, 3.0, k)])]
    X = np.column_stack([rng.integers(0, 2, n), rng.exponential(1.0, n), rng.poisson(3.0, n),
                         rng.gamma(2.0, 1.0, n), rng.integers(0, 3, n),
                         rng.normal(50.0, 3.0, n)])
    return family, MixtureParams(rng.dirichlet(np.ones(k)), ExpFamParams(theta)), X


def column_reference(name, theta, x):
    """(n, K) scipy log-density of one column's values x (n,) under each component."""
    x = np.asarray(x, dtype=np.float64)[:, None]
    if name == "bernoulli":
        return st.bernoulli.logpmf(x, theta[:, 0])
    if name == "exponential":
        return st.expon.logpdf(x, scale=1 / theta[:, 0])
    if name == "poisson":
        return st.poisson.logpmf(x, theta[:, 0])
    if name == "gamma":
        return st.gamma.logpdf(x, theta[:, 0], scale=1 / theta[:, 1])
    if name == "categorical":
        return np.log(theta.T[x[:, 0].astype(int)])
    return st.norm.logpdf(x, theta[:, 0], np.sqrt(theta[:, 1]))


def check_product(family, params, X, expected):
    # float32 data of identity, count and categorical columns compute in float32 (expfam.pyx)
    tol = 1e-12 if X.dtype == np.float64 else 1e-6
    packed = MIXTURE.pack(family, params, X.dtype)
    pure = components_only(family, params, X.dtype)
    one, two = log_density(family, pure, X, 1), log_density(family, pure, X, 2)
    np.testing.assert_allclose(two, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(one, two)
    joint = log_density(family, packed, X, 2)
    np.testing.assert_allclose(joint, expected + np.log(params.weights), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("column", range(len(COLUMNS)), ids=COLUMNS)
def test_product_log_density_block_per_column(column, dtype):
    full, params, X = product_table(np.random.default_rng(column), 4, 150)
    family = ProductFamily([full.columns[column]])
    params = MixtureParams(params.weights, ExpFamParams([params.columns[column]]))
    X = X[:, column:column + 1].astype(dtype)  # float32: the reference at the rounded values
    check_product(family, params, X, column_reference(COLUMNS[column], params.columns[0], X[:, 0]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_product_log_density_block_all_columns(dtype):
    family, params, X = product_table(np.random.default_rng(7), 3, 101)
    X = X.astype(dtype)
    expected = sum(column_reference(name, theta, X[:, j])
                   for j, (name, theta) in enumerate(zip(COLUMNS, params.columns)))
    check_product(family, params, X, expected)


def test_product_rows_out_of_support_get_minus_inf():
    family, params, X = product_table(np.random.default_rng(1), 3, 40)
    X[5, 2] = 2.5  # a non-integer count
    X[9, 3] = -1.0  # a negative Gamma value
    X[11, 5] = np.nan
    out = log_density(family, MIXTURE.pack(family, params, X.dtype), X, 2)
    assert np.all(out[[5, 9, 11]] == -np.inf)
    assert np.isfinite(np.delete(out, [5, 9, 11], axis=0)).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_predict_with_log_joint_gives_both(dtype):
    """predict_block asked for the log-densities and the posteriors at once (the skeleton
    writes the first into the caller's buffer and normalises a copy) gives what the two
    passes give alone."""
    from fastem._kernels import gaussian as kernel

    rng = np.random.RandomState(4)
    family = GaussianFamily("full")
    packed = MIXTURE.pack(family, random_params("full", 3, 2, rng), dtype)
    X = (2 * rng.randn(101, 2)).astype(packed.dtype)
    work = family.workspace(packed, CHUNK, 2, 1)[0]
    joint, log_prob, resp = np.empty((101, 3)), np.empty(101), np.empty((101, 3))
    labels = np.empty(101, dtype=np.intp)
    args = (packed.kind, X, packed.proj, packed.center, packed.log_norm, packed.pivot, CHUNK, 2,
            work)
    kernel.predict_block(*args, log_prob, resp, labels, joint)
    np.testing.assert_array_equal(joint, log_density(family, packed, X, 2))
    alone = np.empty(101), np.empty((101, 3)), np.empty(101, dtype=np.intp)
    kernel.predict_block(*args, *alone)
    for a, b in zip((log_prob, resp, labels), alone):
        np.testing.assert_array_equal(a, b)


def test_log_density_block_checks_scratch():
    rng = np.random.RandomState(0)
    family = GaussianFamily("diag")
    packed = MIXTURE.pack(family, random_params("diag", 3, 2, rng), np.float64)
    small = (np.empty((1, 10)), None)
    with pytest.raises(ValueError, match="workspace too small"):
        family.log_density_block(packed, rng.randn(40, 2), CHUNK, 1, small, np.empty((40, 3)))
    product, params, X = product_table(np.random.default_rng(0), 3, 40)
    packed = MIXTURE.pack(product, params, X.dtype)
    work = product.workspace(packed, CHUNK, 1, 1)
    with pytest.raises(ValueError, match="workspace too small"):
        product.log_density_block(packed, X, CHUNK, 2, work, np.empty((40, 3)))
    with pytest.raises(ValueError, match="shape"):
        product.log_density_block(packed, X, CHUNK, 1, work, np.empty((40, 2)))
