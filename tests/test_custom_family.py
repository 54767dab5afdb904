"""Custom families (fastem.families.custom): user functions compiled with Numba, run by the
chunked, threaded engine. The von Mises example is fitted and checked against its parameters
and a scipy.stats reference; a diagonal Gaussian written as a custom family is checked against
the built-in Cython family."""
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastem.drivers.local import LocalDriver  # noqa: E402
from fastem.em import run_em  # noqa: E402
from fastem.families.custom import CustomFamily  # noqa: E402
from fastem.families.gaussian import GaussianFamily, GaussianParams  # noqa: E402
from fastem.initialization import initial_params, params_from_resp  # noqa: E402
from fastem.latent.mixture import Mixture, MixtureParams, mixture_params  # noqa: E402

MIXTURE = Mixture()  # maximum-likelihood weights

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    name = "von_mises_mixture"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Numba's cache finds the module again by its name
        spec.loader.exec_module(module)
    return sys.modules[name]


vm = load_example()


# ------------------------------------------------- a diagonal Gaussian as a custom family
class Diag(NamedTuple):
    mean: np.ndarray  # (K, D)
    var: np.ndarray  # (K, D)


@numba.njit(nogil=True, cache=True)
def diag_log_density(X, args, out):
    mean, var, c = args
    n, d_count = X.shape
    for i in range(n):
        for k in range(c.shape[0]):
            acc = c[k]
            for d in range(d_count):
                z = X[i, d] - mean[k, d]
                acc -= 0.5 * z * z / var[k, d]
            out[i, k] = acc


@numba.njit(nogil=True, cache=True)
def diag_statistics(X, resp, out):
    n, d_count = X.shape
    for i in range(n):
        for k in range(resp.shape[1]):
            r = resp[i, k]
            for d in range(d_count):
                out[k, d] += r * X[i, d]
                out[k, d_count + d] += r * X[i, d] * X[i, d]


def diag_prepare(params):
    mean, var = params
    return mean, var, -0.5 * np.log(2 * np.pi * var).sum(axis=1)


def diag_m_step(s0, sums, params):
    d = sums.shape[1] // 2
    mean = sums[:, :d] / s0[:, None]
    var = sums[:, d:] / s0[:, None] - mean**2 + 1e-6
    return Diag(mean, var)


def diag_family(**options):
    return CustomFamily(diag_log_density, diag_statistics, diag_m_step, 2 * options.pop("d"),
                        prepare=diag_prepare, n_parameters=lambda d: 2 * d,
                        sample=lambda p, k, n, rng: p.mean[k] + np.sqrt(p.var[k]) *
                        rng.standard_normal((n, p.mean.shape[1])), **options)


# -------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def circle_data():
    X, labels = vm.make_data(n=6000, seed=3)
    return X, labels


def vm_params(family, X, rows, kappa=2.0):
    k = len(rows)
    comps = vm.from_rows(X[rows])
    return mixture_params(np.full(k, 1.0 / k), family.make_params(vm.VonMisesParams(
        comps.mu, np.full_like(comps.mu, kappa))))


def reference_pass(X, weights, params):
    """NumPy/scipy reference of one E-step over unit-circle data: ll, s0, sums, worst."""
    from scipy.special import logsumexp
    from scipy.stats import vonmises

    d = X.shape[1] // 2
    theta = np.arctan2(X[:, d:], X[:, :d])
    mu, kappa = params.components
    logp = np.stack([vonmises.logpdf(theta, kappa[k], loc=mu[k]).sum(axis=1)
                     for k in range(len(mu))], axis=1) + np.log(params.weights)
    lse = logsumexp(logp, axis=1)
    resp = np.exp(logp - lse[:, None])
    w = np.ones(len(X)) if weights is None else weights
    keep = w != 0
    rw = resp[keep] * w[keep, None]
    worst_row = np.flatnonzero(keep)[np.argmin(lse[keep])]
    return (w[keep] @ lse[keep], w.sum(), rw.sum(axis=0), rw.T @ X[keep],
            lse[worst_row], worst_row)


def check_stats_against_reference(family, X, weights, params, rtol):
    driver = LocalDriver(X, weights, chunk_size=64, n_threads=2)
    packed = MIXTURE.pack(family, params, driver.dtype)
    stats, worst = driver.accumulate(family, packed)
    ll, total, s0, sums, worst_value, worst_row = reference_pass(
        X.astype(np.float64), weights, params)
    k = params.n_components
    np.testing.assert_allclose(stats[0], ll, rtol=rtol)
    np.testing.assert_allclose(stats[1], total, rtol=1e-12)
    np.testing.assert_allclose(stats[2:2 + k], s0, rtol=rtol)
    np.testing.assert_allclose(stats[2 + k:].reshape(k, -1), sums, rtol=rtol, atol=rtol * total)
    assert worst[1] == worst_row
    np.testing.assert_allclose(worst[0], worst_value, rtol=rtol)


# ---------------------------------------------------------------------------------- tests
def test_import_fastem_does_not_import_numba():
    code = ("import sys, fastem, fastem.families.custom, fastem.em, fastem.initialization; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_statistics_match_numpy_reference(circle_data, dtype):
    X = circle_data[0].astype(dtype)
    family = vm.make_family(2, min_chunk_rows=1)
    params = vm_params(family, circle_data[0], [0, 1, 2])
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    check_stats_against_reference(family, X, None, params, rtol)


def test_weighted_statistics_skip_zero_weight_rows(circle_data):
    X = circle_data[0].copy()
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 2.0, len(X))
    weights[rng.choice(len(X), 500, replace=False)] = 0.0
    family = vm.make_family(2, min_chunk_rows=1)
    params = vm_params(family, X, [0, 1, 2])
    check_stats_against_reference(family, X, weights, params, 1e-10)
    # zero-weight rows may hold anything (nan_policy="omit"): the user never sees them
    X[weights == 0] = np.nan
    driver = LocalDriver(X, weights, chunk_size=64, n_threads=2)
    stats, _ = driver.accumulate(family, MIXTURE.pack(family, params, driver.dtype))
    assert np.isfinite(stats).all()


def test_all_zero_weight_chunks_add_nothing(circle_data):
    X = circle_data[0]
    family = vm.make_family(2, min_chunk_rows=1)
    params = vm_params(family, X, [0, 1, 2])
    weights = np.zeros(len(X))
    weights[-10:] = 1.0
    driver = LocalDriver(X, weights, chunk_size=64, n_threads=2)
    stats, worst = driver.accumulate(family, MIXTURE.pack(family, params, driver.dtype))
    alone = LocalDriver(X[-10:], chunk_size=64, n_threads=1)
    stats_alone, worst_alone = alone.accumulate(family, MIXTURE.pack(family, params, alone.dtype))
    np.testing.assert_allclose(stats, stats_alone, rtol=1e-12)
    assert worst[1] == len(X) - 10 + worst_alone[1]


def test_recovers_known_parameters():
    X, _ = vm.make_data(n=20000, seed=0)
    result = vm.fit(X, 3, seed=0, n_threads=2)
    assert result.converged
    params = result.params
    order = vm.match(params.components.mu, vm.TRUE.mu)
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(params.weights[order], vm.TRUE_WEIGHTS, atol=0.02)
    gap = np.angle(np.exp(1j * (params.components.mu[order] - vm.TRUE.mu)))
    np.testing.assert_allclose(gap, 0.0, atol=0.05)
    np.testing.assert_allclose(params.components.kappa[order], vm.TRUE.kappa, rtol=0.1)


@pytest.mark.parametrize("m_step", ["exact", "partial"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_never_decreases(circle_data, m_step, seed):
    X = circle_data[0]
    family = vm.make_family(2)
    mixture = Mixture(1.0 + seed)  # seed 1, 2: MAP weights
    rng = np.random.default_rng(seed)
    driver = LocalDriver(X, n_threads=2)
    params = initial_params("random", mixture, family, driver, 4, rng)
    result = run_em(mixture, family, driver, params, tol=0.0, max_iter=30, rng=rng, m_step=m_step,
                    m_step_iters=2)
    history = np.array(result.lower_bounds)
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))


def test_partial_m_step_reaches_the_exact_fixed_point(circle_data):
    X = circle_data[0]
    family = vm.make_family(2)
    driver = LocalDriver(X, n_threads=2)
    runs = []
    for m_step in ("exact", "partial"):
        rng = np.random.default_rng(5)
        params = vm_params(family, X, [0, 1, 2])
        runs.append(run_em(MIXTURE, family, driver, params, tol=1e-12, max_iter=500, rng=rng,
                           m_step=m_step, m_step_iters=3))
    np.testing.assert_allclose(runs[1].lower_bound, runs[0].lower_bound, rtol=1e-8)
    np.testing.assert_allclose(runs[1].params.components.kappa, runs[0].params.components.kappa,
                               rtol=1e-3)


@pytest.mark.parametrize("small_chunks", [True, False])
def test_bitwise_identical_for_any_thread_count(circle_data, small_chunks):
    X = circle_data[0] if small_chunks else np.tile(circle_data[0], (5, 1))  # default chunking
    family = vm.make_family(2, min_chunk_rows=1 if small_chunks else None)
    chunk_size = 50 if small_chunks else None
    weights = np.random.default_rng(1).uniform(0, 2, len(X))
    results = []
    for n_threads in (1, 2, 3):
        driver = LocalDriver(X, weights, chunk_size=chunk_size, n_threads=n_threads)
        params = vm_params(family, X, [0, 1, 2])
        result = run_em(MIXTURE, family, driver, params, tol=0.0, max_iter=5,
                        rng=np.random.default_rng(0))
        stats, worst = driver.accumulate(family, MIXTURE.pack(family, result.params, driver.dtype))
        log_prob, resp = np.empty(len(X)), np.empty((len(X), 3))
        driver.predict(family, MIXTURE.pack(family, result.params, driver.dtype),
                       {"log_prob": log_prob, "resp": resp})
        results.append((stats, worst, result.lower_bounds, log_prob, resp))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_chunk_size_changes_results_only_by_rounding(circle_data):
    X = circle_data[0]
    family = vm.make_family(2, min_chunk_rows=1)
    params = vm_params(family, X, [0, 1, 2])
    runs = [LocalDriver(X, chunk_size=c, n_threads=2).accumulate(
        family, MIXTURE.pack(family, params, np.float64))[0] for c in (17, 1000, 100000)]
    for stats in runs[1:]:
        np.testing.assert_allclose(stats, runs[0], rtol=1e-12)


def test_weights_equal_repeated_rows(circle_data):
    X = circle_data[0][:3000]
    counts = np.random.default_rng(2).integers(0, 3, len(X))
    family = vm.make_family(2)
    fits = []
    for data, weights in ((X, counts.astype(float)), (np.repeat(X, counts, axis=0), None)):
        driver = LocalDriver(data, weights, n_threads=2)
        params = vm_params(family, X, [0, 1, 2])
        fits.append(run_em(MIXTURE, family, driver, params, tol=0.0, max_iter=10,
                           rng=np.random.default_rng(0)))
    np.testing.assert_allclose(fits[0].lower_bounds, fits[1].lower_bounds, rtol=1e-10)
    np.testing.assert_allclose(fits[0].params.components.kappa,
                               fits[1].params.components.kappa, rtol=1e-8)


def test_predict_matches_reference(circle_data):
    from scipy.special import logsumexp
    from scipy.stats import vonmises

    X = circle_data[0]
    family = vm.make_family(2, min_chunk_rows=1)
    params = vm_params(family, X, [0, 10, 20])
    driver = LocalDriver(X, chunk_size=100, n_threads=2)
    n = len(X)
    log_prob, resp, labels = np.empty(n), np.empty((n, 3)), np.empty(n, dtype=np.intp)
    driver.predict(family, MIXTURE.pack(family, params, driver.dtype),
                   {"log_prob": log_prob, "resp": resp, "labels": labels})
    theta = np.arctan2(X[:, 2:], X[:, :2])
    mu, kappa = params.components
    logp = np.stack([vonmises.logpdf(theta, kappa[k], loc=mu[k]).sum(axis=1) for k in range(3)],
                    axis=1) + np.log(params.weights)
    np.testing.assert_allclose(log_prob, logsumexp(logp, axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp, np.exp(logp - logsumexp(logp, axis=1)[:, None]),
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(labels, logp.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_density_block_matches_reference(dtype):
    """The component log-densities (zero log_norm) and log p(x, z = k) (as packed), chunked on
    the pool: the same for 1 and 2 threads."""
    rng = np.random.default_rng(5)
    k, d, n = 3, 4, 1000
    X = rng.normal(size=(n, d)).astype(dtype)
    family = diag_family(d=d, min_chunk_rows=1)
    params = mixture_params(rng.dirichlet(np.ones(k)), family.make_params(
        Diag(rng.normal(size=(k, d)), rng.uniform(0.5, 2, (k, d)))))
    x = X.astype(np.float64)
    expected = np.stack([-0.5 * (np.log(2 * np.pi * params.components.var[c])
                                 + (x - params.components.mean[c]) ** 2
                                 / params.components.var[c]).sum(axis=1)
                         for c in range(k)], axis=1)
    packed = MIXTURE.pack(family, params, dtype)
    pure = family.pack(params.components, dtype)
    outs = []
    for n_threads in (1, 2):
        work = family.workspace(pure, 64, n_threads, -(-n // 64))
        out = np.full((n, k), np.nan)
        family.log_density_block(pure, X, 64, n_threads, work, out)
        outs.append(out)
    np.testing.assert_allclose(outs[1], expected, rtol=1e-12)
    np.testing.assert_array_equal(outs[0], outs[1])
    work = family.workspace(packed, 64, 2, -(-n // 64))
    joint = np.full((n, k), np.nan)
    family.log_density_block(packed, X, 64, 2, work, joint)
    np.testing.assert_allclose(joint, expected + np.log(params.weights), rtol=1e-12)
    with pytest.raises(ValueError, match="C-contiguous"):
        family.log_density_block(packed, X, 64, 2, work, np.empty((n, k + 1)))


def test_agrees_with_builtin_diagonal_gaussian():
    rng = np.random.default_rng(0)
    k, d = 3, 4
    centres = rng.normal(scale=4, size=(k, d))
    X = centres[rng.integers(k, size=5000)] + rng.normal(size=(5000, d))
    weights = rng.uniform(0, 2, len(X))
    start = X[[0, 1, 2]].copy()
    builtin = GaussianFamily("diag", reg_covar=1e-6)
    custom = diag_family(d=d)
    results = []
    for family, params in (
        (builtin, MixtureParams(np.full(k, 1 / k), GaussianParams.from_covariances(
            "diag", start, np.ones((k, d))))),
        (custom, mixture_params(np.full(k, 1 / k), custom.make_params(Diag(start,
                                                                           np.ones((k, d)))))),
    ):
        driver = LocalDriver(X, weights, n_threads=2)
        results.append(run_em(MIXTURE, family, driver, params, tol=0.0, max_iter=20,
                              rng=np.random.default_rng(0)))
    np.testing.assert_allclose(results[1].lower_bounds, results[0].lower_bounds, rtol=1e-10)
    np.testing.assert_allclose(results[1].params.components.mean, results[0].params.means,
                               rtol=1e-8)
    np.testing.assert_allclose(results[1].params.weights, results[0].params.weights, rtol=1e-8)


def test_initialisation_from_responsibilities_and_kmeans(circle_data):
    X = circle_data[0]
    family = vm.make_family(2)
    driver = LocalDriver(X, n_threads=2)
    labels = circle_data[1]
    one_hot = np.eye(3)[labels]
    params = params_from_resp(MIXTURE, family, driver, np.zeros((3, 4)),
                              lambda start, block: one_hot[start:start + block.shape[0]])
    np.testing.assert_allclose(params.weights, np.bincount(labels) / len(labels))
    for k in range(3):
        C, S = X[labels == k, :2].sum(axis=0), X[labels == k, 2:].sum(axis=0)
        np.testing.assert_allclose(params.components.mu[k], np.arctan2(S, C), atol=1e-12)
    for method in ("kmeans", "k-means++", "random", "random_from_data"):
        params = initial_params(method, MIXTURE, family, driver, 3, np.random.default_rng(0))
        assert np.isfinite(params.weights).all() and np.isfinite(params.components.kappa).all()


def test_empty_component_is_reseeded_on_data(circle_data):
    X = circle_data[0]
    family = vm.make_family(2)
    params = vm_params(family, X, [0, 1, 2])
    params = MixtureParams(np.array([0.5, 0.5, 0.0]), params.components)  # no mass: empty
    driver = LocalDriver(X, n_threads=2)
    with pytest.warns(RuntimeWarning, match="re-seeded"):
        result = run_em(MIXTURE, family, driver, params, tol=0.0, max_iter=3,
                        rng=np.random.default_rng(0))
    assert result.params.weights[2] > 0
    assert np.isfinite(result.params.components.kappa).all()
    # the default from_rows (one-hot M-step on the rows) serves families whose M-step of one
    # row is finite, like this Gaussian one (variance reg 1e-6)
    gauss = diag_family(d=2)
    p = mixture_params(np.array([0.5, 0.5]), gauss.make_params(Diag(np.zeros((2, 2)),
                                                                    np.ones((2, 2)))))
    moved = MIXTURE.reseed(gauss, p, np.array([1]), np.array([[3.0, 4.0]]))
    np.testing.assert_allclose(moved.components.mean[1], [3.0, 4.0])
    np.testing.assert_allclose(moved.components.var[1], 1e-6)
    np.testing.assert_allclose(moved.weights, [0.5, 0.5])


def test_frozen_parameters_stay_fixed(circle_data):
    X = circle_data[0]
    driver = LocalDriver(X, n_threads=2)
    for frozen in ({"weights"}, {"kappa"}, {"mu", "weights"}):
        family = vm.make_family(2, frozen=frozen - {"weights"})
        mixture = Mixture(frozen_weights="weights" in frozen)
        params = vm_params(family, X, [0, 1, 2], kappa=3.0)
        params = MixtureParams(np.array([0.2, 0.3, 0.5]), params.components)
        result = run_em(mixture, family, driver, params, tol=0.0, max_iter=5,
                        rng=np.random.default_rng(0))
        history = np.array(result.lower_bounds)
        assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))
        if "weights" in frozen:
            np.testing.assert_array_equal(result.params.weights, params.weights)
        for name in frozen - {"weights"}:
            np.testing.assert_array_equal(getattr(result.params.components, name),
                                          getattr(params.components, name))
    family = vm.make_family(2, frozen={"sigma"})
    with pytest.raises(ValueError, match="sigma"):
        run_em(MIXTURE, family, driver, vm_params(family, X, [0, 1, 2]), tol=0.0, max_iter=2,
               rng=np.random.default_rng(0))


def test_sample_and_n_parameters():
    family = vm.make_family(2)
    params = mixture_params(vm.TRUE_WEIGHTS, family.make_params(vm.TRUE))
    X, labels = MIXTURE.sample(family, params, 1000, np.random.default_rng(0))
    assert X.shape == (1000, 4) and labels.shape == (1000,)
    np.testing.assert_allclose(X[:, :2] ** 2 + X[:, 2:] ** 2, 1.0)
    assert np.bincount(labels).tolist() == sorted(np.bincount(labels).tolist(), reverse=True)
    assert MIXTURE.n_parameters(family, 4, 3) == 3 * 4 + 2


# ------------------------------------------------------------ bad user functions
@numba.njit(nogil=True, cache=True)
def returns_instead_of_writing(X, args, out):
    return np.zeros((X.shape[0], 3))


@numba.njit(nogil=True, cache=True)
def writes_too_many_columns(X, args, out):
    for i in range(X.shape[0]):
        for k in range(out.shape[1] + 2):
            out[i, k] = 0.0


@numba.njit(nogil=True, cache=True)
def writes_nan(X, args, out):
    out[:, :] = np.nan


def test_bad_user_functions_give_clear_errors(circle_data):
    X = circle_data[0][:500]
    driver = LocalDriver(X, n_threads=2)
    good = dict(log_density=vm.log_density, statistics=vm.statistics, m_step=vm.m_step,
                n_statistics=4, prepare=vm.prepare, from_rows=vm.from_rows)
    start = vm_params(vm.make_family(2), X, [0, 1, 2])

    def fit(**changes):
        family = CustomFamily(**{**good, **changes})
        return run_em(MIXTURE, family, driver, start, tol=0.0, max_iter=2, rng=np.random.default_rng(0))

    with pytest.raises(ValueError, match="statistics wrote past the end of out.*n_statistics"):
        fit(n_statistics=3)
    with pytest.raises(ValueError, match="unwritten.*returned a value"):
        fit(log_density=returns_instead_of_writing)
    with pytest.raises(ValueError, match="log_density wrote past the end of out"):
        fit(log_density=writes_too_many_columns)
    with pytest.raises(ValueError, match="NaN"):
        fit(log_density=writes_nan)
    with pytest.raises(ValueError, match=r"log_density\(X, params, out\) failed.*"):
        fit(prepare=lambda params: (params.mu,))  # unpacking two from a 1-tuple: typing error
    with pytest.raises(ValueError, match="prepare must return a tuple"):
        fit(prepare=lambda params: [params.mu, params.kappa])
    with pytest.raises(ValueError, match="m_step must return .* tuple"):
        fit(m_step=lambda s0, sums, params: [np.zeros((3, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="parameter kappa must have the 3 components"):
        fit(m_step=lambda s0, sums, params: vm.VonMisesParams(np.zeros((3, 2)), np.ones(2)))
    with pytest.raises(ValueError, match="non-finite values in parameter mu"):
        fit(m_step=lambda s0, sums, params: vm.VonMisesParams(np.full((3, 2), np.nan),
                                                                np.ones((3, 2))))
    with pytest.raises(TypeError, match="log_density must be a function"):
        CustomFamily(**{**good, "log_density": None})
    with pytest.raises(ValueError, match="n_statistics"):
        CustomFamily(**{**good, "n_statistics": -1})


def test_jitted_functions_holding_the_gil_are_flagged():
    gil = numba.njit(vm.statistics.py_func)
    with pytest.warns(UserWarning, match="nogil"):
        CustomFamily(vm.log_density, gil, vm.m_step, 4)


def test_plain_numpy_functions_work(circle_data):
    """Numba is optional: the engine runs any function with the signatures (slowly)."""
    X = circle_data[0]

    def log_density(X, args, out):
        W, c = args
        out[:] = X @ W + c

    def statistics(X, resp, out):
        out += resp.T @ X

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        family = CustomFamily(log_density, statistics, vm.m_step, 4, prepare=vm.prepare,
                              from_rows=vm.from_rows)
    params = vm_params(family, X, [0, 1, 2])
    driver = LocalDriver(X, chunk_size=64, n_threads=2)
    numpy_stats = driver.accumulate(family, MIXTURE.pack(family, params, driver.dtype))[0]
    numba_stats = driver.accumulate(vm.make_family(2), MIXTURE.pack(family, params, driver.dtype))[0]
    np.testing.assert_allclose(numpy_stats, numba_stats, rtol=1e-12)


def test_a_model_of_a_custom_family_is_not_saved(tmp_path):
    """Its functions cannot be stored without pickle: saving says so instead of writing."""
    from fastem import MixtureModel

    X, _ = vm.make_data(n=2000, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixtureModel(vm.make_family(2), 3, random_state=0, max_iter=2).fit(X)
    with pytest.raises(TypeError, match="save family, a CustomFamily: a family of user Python "
                                        "functions cannot be stored in a model file without "
                                        "pickle"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_fits_through_mixture_model():
    from fastem import MixtureModel

    X, labels = vm.make_data(n=20000, seed=4)
    model = MixtureModel(vm.make_family(2), 3, random_state=0, n_threads=2, tol=1e-8,
                         max_iter=200).fit(X)
    assert model.converged_
    history = np.array(model.lower_bounds_)
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))
    order = vm.match(model.params_.components.mu, vm.TRUE.mu)
    np.testing.assert_allclose(model.weights_[order], vm.TRUE_WEIGHTS, atol=0.02)
    np.testing.assert_allclose(model.params_.components.kappa[order], vm.TRUE.kappa, rtol=0.1)
    assert model.params_.n_features == 4
    predicted = model.predict(X)
    assert np.mean(order[labels] == predicted) > 0.9
    proba = model.predict_proba(X[:100])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.isclose(model.score(X), model.score_samples(X).mean())
    n = len(X)
    assert np.isclose(model.bic(X), -2 * model.score(X) * n + (3 * 4 + 2) * np.log(n))
    sample, sample_labels = model.sample(50)
    assert sample.shape == (50, 4) and sample_labels.shape == (50,)
    partial = MixtureModel(vm.make_family(2), 3, random_state=0, n_threads=1, tol=1e-8,
                           max_iter=300, m_step="partial", m_step_iters=2).fit(X)
    np.testing.assert_allclose(partial.lower_bound_, model.lower_bound_, rtol=1e-6)


def test_dask_array_gives_the_local_fit():
    dask = pytest.importorskip("dask")
    import dask.array as da

    from fastem import MixtureModel

    X, _ = vm.make_data(n=6000, seed=5)
    options = dict(random_state=0, tol=1e-8, init_params="random_from_data", n_threads=2)
    local = MixtureModel(vm.make_family(2), 3, **options).fit(X)
    with dask.config.set(scheduler="synchronous"):
        remote = MixtureModel(vm.make_family(2), 3, **options).fit(
            da.from_array(X, chunks=2000))
    np.testing.assert_allclose(remote.lower_bounds_, local.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(remote.params_.components.kappa, local.params_.components.kappa,
                               rtol=1e-10)


def test_memory_mapped_file_gives_the_in_memory_result(circle_data, tmp_path):
    """Read-only blocks (a memmap) get their own Numba specialisation, compiled and tried
    before the threads start."""
    X = circle_data[0]
    path = tmp_path / "X.npy"
    np.save(path, X)
    weights = np.ones(len(X))
    weights[::7] = 0.0  # compacted chunks of a read-only block stay read-only
    family = vm.make_family(2)
    results = []
    for data in (X, np.load(path, mmap_mode="r")):
        driver = LocalDriver(data, weights, n_threads=2)
        params = vm_params(family, X, [0, 1, 2])
        results.append(run_em(MIXTURE, family, driver, params, tol=0.0, max_iter=5,
                              rng=np.random.default_rng(0)).lower_bounds)
    np.testing.assert_array_equal(results[0], results[1])


def test_mixture_model_omits_nonfinite_rows_and_takes_sample_weight():
    from fastem import MixtureModel

    X, _ = vm.make_data(n=4000, seed=6)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, len(X))
    options = dict(random_state=0, tol=1e-8, n_threads=2, init_params="random_from_data")
    clean = MixtureModel(vm.make_family(2), 3, **options).fit(X, sample_weight=weights)
    dirty = np.vstack([X, np.full((5, 4), np.nan)])
    with pytest.warns(RuntimeWarning, match="omitted"):
        model = MixtureModel(vm.make_family(2), 3, nan_policy="omit", **options).fit(
            dirty, sample_weight=np.concatenate([weights, np.ones(5)]))
    assert model.n_omitted_rows_ == 5
    np.testing.assert_allclose(model.lower_bounds_, clean.lower_bounds_, rtol=1e-10)
    with pytest.warns(RuntimeWarning, match="omitted"):
        labels = model.predict(dirty)
    assert (labels[-5:] == -1).all() and (labels[:-5] >= 0).all()
