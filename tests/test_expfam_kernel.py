"""The exponential-family kernel (fastem._kernels.expfam) against a NumPy/scipy.stats reference.

Random components of every column kind are written as natural parameters and log-normalisers;
the reference evaluates the same mixture with scipy.stats log-densities column by column.
"""
import sys
import textwrap

import numpy as np
import pytest
from helpers import build_consumer
from scipy import stats as st
from scipy.special import gammaln

from fastem._kernels import expfam

IDENTITY, COUNT, LOG, CATEGORICAL, GAUSSIAN = (
    expfam.COL_IDENTITY, expfam.COL_COUNT, expfam.COL_LOG, expfam.COL_CATEGORICAL,
    expfam.COL_GAUSSIAN)
RTOL = 1e-12
# float32 data compute in float32 where their bound allows (identity, count and categorical
# columns: features, parameters and both GEMMs), with exp by the shorter series (_vexp.h)
RTOL32 = 1e-6


def rtol(X):
    """The tolerance for results computed from data X."""
    return RTOL32 if X.dtype == np.float32 else RTOL
N_CATEGORIES = 4

# A column of the test tables: (name, kernel kind, feature width).
COLUMNS = {
    "bernoulli": (IDENTITY, 1),
    "exponential": (IDENTITY, 1),
    "poisson": (COUNT, 1),
    "gamma": (LOG, 2),
    "categorical": (CATEGORICAL, N_CATEGORIES),
    "normal": (GAUSSIAN, 2),
}
MIXED = ["bernoulli", "exponential", "poisson", "gamma", "categorical", "normal", "poisson",
         "categorical"]


class Mixture:
    """Random mixture over the given columns: kernel parameters and a scipy.stats reference."""

    def __init__(self, columns, k, rng, poisson_scale=4.0):
        self.columns, self.k = columns, k
        d = len(columns)
        self.col_kind = np.array([COLUMNS[c][0] for c in columns], dtype=np.int32)
        self.col_offset = np.concatenate([[0], np.cumsum([COLUMNS[c][1] for c in columns])])
        self.col_offset = self.col_offset.astype(np.intp)
        self.col_shift = np.zeros(d)
        self.log_weights = np.log(rng.dirichlet(np.ones(k)))
        self.params = []
        f = self.col_offset[-1]
        natural = np.zeros((f, k))
        log_norm = self.log_weights.copy()
        for j, name in enumerate(columns):
            o = self.col_offset[j]
            if name == "bernoulli":
                p = rng.uniform(0.1, 0.9, size=k)
                natural[o] = np.log(p / (1 - p))
                log_norm += np.log1p(-p)
            elif name == "exponential":
                p = rng.uniform(0.3, 3.0, size=k)  # rates
                natural[o] = -p
                log_norm += np.log(p)
            elif name == "poisson":
                p = rng.uniform(0.5, 1.5, size=k) * poisson_scale
                natural[o] = np.log(p)
                log_norm -= p
            elif name == "gamma":
                shape, rate = rng.uniform(0.5, 5.0, size=k), rng.uniform(0.5, 2.0, size=k)
                p = (shape, rate)
                natural[o] = -rate
                natural[o + 1] = shape - 1
                log_norm += shape * np.log(rate) - gammaln(shape)
            elif name == "categorical":
                p = rng.dirichlet(np.ones(N_CATEGORIES), size=k)  # (k, categories)
                natural[o:o + N_CATEGORIES] = np.log(p).T
            else:  # normal around a shift, parametrised relative to it
                mean, var = rng.normal(3.0, 2.0, size=k), rng.uniform(0.5, 3.0, size=k)
                self.col_shift[j] = s = 3.0 + rng.normal()
                p = (mean, var)
                m = mean - s
                natural[o] = m / var
                natural[o + 1] = -0.5 / var
                log_norm += -0.5 * np.log(2 * np.pi * var) - 0.5 * m * m / var
            self.params.append(p)
        self.natural, self.log_norm = natural, log_norm

    @property
    def f(self):
        return int(self.col_offset[-1])

    def sample(self, n, rng):
        z = rng.choice(self.k, size=n, p=np.exp(self.log_weights))
        X = np.empty((n, len(self.columns)))
        for j, (name, p) in enumerate(zip(self.columns, self.params)):
            if name == "bernoulli":
                X[:, j] = rng.uniform(size=n) < p[z]
            elif name == "exponential":
                X[:, j] = rng.exponential(1 / p[z])
            elif name == "poisson":
                X[:, j] = rng.poisson(p[z])
            elif name == "gamma":
                X[:, j] = rng.gamma(p[0][z], 1 / p[1][z])
            elif name == "categorical":
                X[:, j] = [rng.choice(N_CATEGORIES, p=p[c]) for c in z]
            else:
                X[:, j] = rng.normal(p[0][z], np.sqrt(p[1][z]))
        return X

    def log_joint(self, X):
        """(n, k) log p(x_i, z = k) by scipy.stats, one column and component at a time."""
        X = np.asarray(X, dtype=np.float64)
        out = np.tile(self.log_weights, (X.shape[0], 1))
        for j, (name, p) in enumerate(zip(self.columns, self.params)):
            x = X[:, j:j + 1]
            with np.errstate(all="ignore"):
                if name == "bernoulli":
                    lp = st.bernoulli.logpmf(x, p)
                elif name == "exponential":
                    lp = st.expon.logpdf(x, scale=1 / p)
                elif name == "poisson":
                    lp = st.poisson.logpmf(x, p)
                elif name == "gamma":
                    lp = st.gamma.logpdf(x, p[0], scale=1 / p[1])
                elif name == "categorical":
                    valid = (x >= 0) & (x < N_CATEGORIES) & (x == np.floor(x))
                    code = np.where(valid, x, 0).astype(int)[:, 0]
                    lp = np.where(valid, np.log(p.T[code]), -np.inf)
                else:
                    lp = st.norm.logpdf(x, p[0], np.sqrt(p[1]))
            out += np.where(np.isnan(lp), -np.inf, lp)
        return out

    def features(self, X):
        """(n, f) T(x) in float64 (all values in support)."""
        X = np.asarray(X, dtype=np.float64)
        T = np.zeros((X.shape[0], self.f))
        for j, name in enumerate(self.columns):
            o, x = self.col_offset[j], X[:, j]
            if name == "gamma":
                T[:, o], T[:, o + 1] = x, np.log(x)
            elif name == "categorical":
                T[np.arange(len(x)), o + x.astype(int)] = 1.0
            elif name == "normal":
                v = x - self.col_shift[j]
                T[:, o], T[:, o + 1] = v, v * v
            else:
                T[:, o] = x
        return T

    def layout(self):
        return self.col_kind, self.col_offset, self.col_shift, self.natural, self.log_norm


def fit(mix, X, weights=None, resp_in=None, with_stats=True, chunk_size=7, n_threads=2,
        row_offset=0, stats=None, worst=None):
    """Run fit_block on fresh scratch; return (stats, worst)."""
    k, f = mix.k, mix.f
    n = X.shape[0]
    size = expfam.stats_size(f, k)
    n_chunks = max(1, -(-n // chunk_size))
    workspace = np.full((n_threads, expfam.workspace_size(chunk_size, f, k)), np.nan)
    slots = np.full((n_chunks, size + 2), np.nan)
    stats = np.zeros(size) if stats is None else stats
    worst = np.array([np.inf, -1.0]) if worst is None else worst
    expfam.fit_block(
        X, np.empty(0) if weights is None else weights,
        np.empty((0, k)) if resp_in is None else resp_in,
        *mix.layout(), with_stats, chunk_size, n_threads, workspace, slots, stats, worst,
        row_offset)
    return stats, worst


def predict(mix, X, chunk_size=7, n_threads=2, want=(True, True, True)):
    n, k = X.shape[0], mix.k
    workspace = np.full((n_threads, expfam.workspace_size(chunk_size, mix.f, k)), np.nan)
    log_prob = np.full(n if want[0] else 0, np.nan)
    resp = np.full((n, k) if want[1] else (0, k), np.nan)
    labels = np.full(n if want[2] else 0, -7, dtype=np.intp)
    expfam.predict_block(X, *mix.layout(), chunk_size, n_threads, workspace, log_prob, resp,
                         labels)
    return log_prob, resp, labels


def reference_stats(mix, X, weights=None, resp_in=None):
    """[ll, W, s0, S] and the per-row log p(x) from the scipy.stats reference."""
    n = X.shape[0]
    w = np.ones(n) if weights is None else weights
    log_joint = mix.log_joint(X)
    log_px = np.logaddexp.reduce(log_joint, axis=1)
    resp = np.exp(log_joint - log_px[:, None]) if resp_in is None else resp_in
    ll = 0.0 if resp_in is not None else w @ log_px
    wr = w[:, None] * resp
    T = mix.features(X)
    return np.concatenate([[ll, w.sum()], wr.sum(axis=0), (wr.T @ T).ravel()]), log_px


def assert_close(actual, expected, rtol=RTOL):
    """Relative tolerance, with an absolute floor at rtol times the largest magnitude."""
    expected = np.asarray(expected, dtype=np.float64)
    finite = expected[np.isfinite(expected)]
    scale = np.abs(finite).max() if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def data(mix, n, dtype, seed):
    X = mix.sample(n, np.random.default_rng(seed)).astype(dtype)
    return X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("columns", [[c] for c in COLUMNS] + [MIXED], ids=lambda c: "+".join(c))
@pytest.mark.parametrize("k", [1, 3])
def test_fit_block_matches_reference(columns, dtype, k):
    rng = np.random.default_rng(len(columns) * 10 + k)
    mix = Mixture(columns, k, rng)
    X = data(mix, 101, dtype, 1)
    stats, worst = fit(mix, X)
    expected, log_px = reference_stats(mix, X)
    assert stats.shape == (2 + k + k * mix.f,)
    assert_close(stats[:1], expected[:1], rtol(X))
    assert stats[1] == 101
    assert_close(stats[2:2 + k], expected[2:2 + k], rtol(X))
    assert_close(stats[2 + k:], expected[2 + k:], rtol(X))
    assert worst[0] == pytest.approx(log_px.min(), rel=rtol(X))
    assert worst[1] == np.argmin(log_px)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 4])
def test_weights_and_zero_weights(dtype, k):
    rng = np.random.default_rng(5)
    mix = Mixture(MIXED, k, rng)
    X = data(mix, 60, dtype, 2)
    w = rng.uniform(0, 3, size=60)
    w[[0, 13, 14, 59]] = 0.0
    # the worst-fit row weighs nothing, so it must not be reported
    log_px = np.logaddexp.reduce(mix.log_joint(X), axis=1)
    w[np.argmin(log_px)] = 0.0
    stats, worst = fit(mix, X, weights=w, chunk_size=8)
    expected, _ = reference_stats(mix, X, weights=w)
    assert_close(stats, expected, rtol(X))
    assert worst[1] == np.argmin(np.where(w > 0, log_px, np.inf))
    assert worst[0] == pytest.approx(log_px[w > 0].min(), rel=rtol(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_given_responsibilities(dtype):
    rng = np.random.default_rng(6)
    mix = Mixture(MIXED, 3, rng)
    X = data(mix, 50, dtype, 3)
    resp_in = rng.dirichlet(np.ones(3), size=50)
    w = rng.uniform(0, 2, size=50)
    w[7] = 0.0
    stats, worst = fit(mix, X, weights=w, resp_in=resp_in, chunk_size=6)
    expected, _ = reference_stats(mix, X, weights=w, resp_in=resp_in)
    # as in the Gaussian kernel: no log-likelihood and no worst row without an E-step
    assert stats[0] == 0.0
    assert list(worst) == [np.inf, -1.0]
    assert_close(stats, expected)


def test_without_stats_only_loglik_and_weight():
    rng = np.random.default_rng(7)
    mix = Mixture(MIXED, 2, rng)
    X = data(mix, 30, np.float64, 4)
    stats, _ = fit(mix, X, with_stats=False)
    expected, _ = reference_stats(mix, X)
    assert_close(stats[:2], expected[:2])
    assert not stats[2:].any()


def test_accumulates_into_stats_and_row_offset():
    rng = np.random.default_rng(8)
    mix = Mixture(MIXED, 3, rng)
    X = data(mix, 40, np.float64, 5)
    stats, worst = fit(mix, X[:25], row_offset=0)
    stats, worst = fit(mix, X[25:], row_offset=25, stats=stats, worst=worst)
    expected, log_px = reference_stats(mix, X)
    assert_close(stats, expected)
    assert worst[1] == np.argmin(log_px)


def test_zero_rows_change_nothing():
    mix = Mixture(MIXED, 3, np.random.default_rng(9))
    X = np.empty((0, len(MIXED)))
    stats = np.arange(expfam.stats_size(mix.f, 3), dtype=np.float64)
    before = stats.copy()
    stats, worst = fit(mix, X, stats=stats)
    np.testing.assert_array_equal(stats, before)
    assert list(worst) == [np.inf, -1.0]
    log_prob, resp, labels = predict(mix, X)
    assert log_prob.shape == (0,) and resp.shape == (0, 3) and labels.shape == (0,)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("given", [False, True])
def test_bitwise_identical_for_any_thread_count(dtype, given):
    rng = np.random.default_rng(10)
    mix = Mixture(MIXED, 5, rng)
    X = data(mix, 997, dtype, 6)
    w = rng.uniform(0, 2, size=997)
    resp_in = rng.dirichlet(np.ones(5), size=997) if given else None
    one = fit(mix, X, weights=w, resp_in=resp_in, chunk_size=16, n_threads=1)
    two = fit(mix, X, weights=w, resp_in=resp_in, chunk_size=16, n_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    p1, p2 = predict(mix, X, 16, 1), predict(mix, X, 16, 2)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 4])
def test_predict_block_matches_reference(dtype, k):
    rng = np.random.default_rng(11 + k)
    mix = Mixture(MIXED, k, rng)
    X = data(mix, 83, dtype, 7)
    log_prob, resp, labels = predict(mix, X, chunk_size=10)
    log_joint = mix.log_joint(X)
    log_px = np.logaddexp.reduce(log_joint, axis=1)
    assert_close(log_prob, log_px, rtol(X))
    assert_close(resp, np.exp(log_joint - log_px[:, None]), rtol(X))
    np.testing.assert_array_equal(labels, np.argmax(log_joint, axis=1))
    # each output may be skipped on its own
    for want in [(True, False, False), (False, True, False), (False, False, True)]:
        partial = predict(mix, X, chunk_size=10, want=want)
        for got, full, wanted in zip(partial, (log_prob, resp, labels), want):
            if wanted:
                np.testing.assert_array_equal(got, full)
            else:
                assert got.shape[0] == 0


def test_large_counts_use_lgamma_beyond_the_table():
    rng = np.random.default_rng(12)
    mix = Mixture(["poisson", "poisson"], 2, rng, poisson_scale=1500.0)
    X = data(mix, 200, np.float64, 8)
    X[:3, 0] = [1023, 1024, 1025]  # both sides of the log-factorial table's end
    assert X.max() > 1100 and X.min() < 1000
    stats, _ = fit(mix, X)
    expected, _ = reference_stats(mix, X)
    assert_close(stats, expected)
    log_prob, _, _ = predict(mix, X)
    assert_close(log_prob, np.logaddexp.reduce(mix.log_joint(X), axis=1))


# (column, out-of-support values) for every kind
OUT_OF_SUPPORT = [
    ("bernoulli", [np.nan, np.inf, -np.inf]),
    ("poisson", [-1.0, 2.5, -0.5, 3.001, np.inf, np.nan]),
    ("gamma", [0.0, -0.0, -3.0, np.inf, np.nan]),
    ("categorical", [-1.0, float(N_CATEGORIES), 1.5, 100.0, 1e30, -1e30, np.nan, np.inf]),
    ("normal", [np.nan, -np.inf, np.inf, 1e200, -1e300]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("column, values", OUT_OF_SUPPORT, ids=[c for c, _ in OUT_OF_SUPPORT])
def test_out_of_support_rows_have_zero_density(column, values, dtype):
    rng = np.random.default_rng(13)
    mix = Mixture(MIXED, 3, rng)
    j = MIXED.index(column)
    for value in values:
        if dtype == np.float32 and np.isfinite(value) and abs(value) > 1e38:
            continue  # not a float32 value
        X = data(mix, 40, dtype, 9)
        bad = 17
        X[bad, j] = value
        stats, worst = fit(mix, X, chunk_size=6, row_offset=100)
        assert not np.isnan(stats).any(), value
        assert stats[0] == -np.inf
        assert list(worst) == [-np.inf, 100 + bad]
        # apart from its weight, the row contributes nothing
        good = np.arange(40) != bad
        expected, _ = reference_stats(mix, X[good])
        assert stats[1] == 40
        assert_close(stats[2:], expected[2:], rtol(X))

        log_prob, resp, labels = predict(mix, X, chunk_size=6)
        assert log_prob[bad] == -np.inf
        assert np.isfinite(np.delete(log_prob, bad)).all()
        assert not np.isnan(resp).any()
        assert not resp[bad].any()
        assert labels[bad] == 0
        assert_close(log_prob[good], np.logaddexp.reduce(mix.log_joint(X[good]), axis=1),
                     rtol(X))

        # a zero-weight bad row is ignored altogether
        w = np.ones(40)
        w[bad] = 0.0
        stats, worst = fit(mix, X, weights=w, chunk_size=6)
        expected, log_px = reference_stats(mix, X[good])
        assert_close(stats[2:], expected[2:], rtol(X))
        assert_close(stats[:1], expected[:1], rtol(X))
        assert np.isfinite(worst[0]) and worst[1] != bad


def test_out_of_support_with_given_responsibilities():
    rng = np.random.default_rng(14)
    mix = Mixture(MIXED, 3, rng)
    X = data(mix, 30, np.float64, 10)
    X[4, MIXED.index("categorical")] = 7
    resp_in = rng.dirichlet(np.ones(3), size=30)
    stats, worst = fit(mix, X, resp_in=resp_in, chunk_size=6)
    assert stats[0] == -np.inf
    assert list(worst) == [-np.inf, 4]
    good = np.arange(30) != 4
    expected, _ = reference_stats(mix, X[good], resp_in=resp_in[good])
    assert stats[1] == 30
    assert_close(stats[2:], expected[2:])


def test_integer_valued_floats_are_in_support():
    """Counts and codes stored as floats near integers: only exact integers count."""
    mix = Mixture(["poisson", "categorical"], 2, np.random.default_rng(15))
    X = np.array([[3.0, 2.0], [np.nextafter(3.0, 4.0), 2.0], [3.0, np.nextafter(2.0, 1.0)],
                  [0.0, 0.0], [-0.0, 3.0]])
    log_prob, _, _ = predict(mix, X)
    assert np.isfinite(log_prob[[0, 3, 4]]).all()
    assert (log_prob[[1, 2]] == -np.inf).all()


def test_nan_parameters_give_minus_inf_not_nan():
    mix = Mixture(MIXED, 2, np.random.default_rng(16))
    mix.natural[:, 1] = np.nan
    X = data(mix, 20, np.float64, 11)
    stats, worst = fit(mix, X)
    assert not np.isnan(stats).any()
    log_prob, resp, _ = predict(mix, X)
    assert np.isfinite(log_prob).all()
    np.testing.assert_array_equal(resp[:, 1], 0.0)


def test_layout_and_scratch_are_validated():
    mix = Mixture(MIXED, 2, np.random.default_rng(17))
    X = data(mix, 20, np.float64, 12)
    f, k = mix.f, 2
    ws = np.empty((2, expfam.workspace_size(7, f, k)))
    slots = np.empty((3, expfam.stats_size(f, k) + 2))

    def run(col_kind=mix.col_kind, col_offset=mix.col_offset, col_shift=mix.col_shift,
            natural=mix.natural, workspace=ws, slots=slots, n_threads=2):
        expfam.fit_block(X, np.empty(0), np.empty((0, k)), col_kind, col_offset, col_shift,
                         natural, mix.log_norm, True, 7, n_threads, workspace, slots,
                         np.zeros(expfam.stats_size(natural.shape[0], k)),
                         np.array([np.inf, -1.0]), 0)

    run()
    bad_kind = mix.col_kind.copy()
    bad_kind[2] = 9
    wide = mix.col_offset.copy()
    wide[1:] += 1  # the Bernoulli column would have two features
    cases = [dict(col_kind=bad_kind), dict(col_offset=wide),
             dict(col_kind=mix.col_kind[:-1]), dict(col_shift=mix.col_shift[:-1]),
             dict(natural=mix.natural[:-1]), dict(workspace=ws[:, :-1]),
             dict(n_threads=3), dict(slots=slots[:2])]
    for case in cases:
        with pytest.raises(ValueError):
            run(**case)
    with pytest.raises(ValueError):
        predict(mix, X, chunk_size=0)


CONSUMER = textwrap.dedent(
    """
    # cython: language_level=3, boundscheck=False, wraparound=False
    from cython cimport floating
    from fastem._kernels.logsumexp cimport normalize_log_rows
    from fastem._kernels.expfam cimport (COL_CATEGORICAL, chunk_fit, chunk_log_prob,
                                         features)
    import numpy as np

    CATEGORICAL = COL_CATEGORICAL


    def log_prob(floating[:, ::1] x, int[::1] col_kind, Py_ssize_t[::1] col_offset,
                 double[::1] col_shift, double[:, ::1] natural, double[::1] log_norm,
                 double[:, ::1] out, double[::1] lse):
        cdef Py_ssize_t n = x.shape[0], d = x.shape[1], k = log_norm.shape[0]
        cdef Py_ssize_t f = col_offset[d]
        cdef double[::1] t = np.empty(n * f + 1)
        cdef double[::1] base = np.empty(n)
        with nogil:
            features(&x[0, 0], n, d, &col_kind[0], &col_offset[0], &col_shift[0], &t[0],
                     &base[0])
            chunk_log_prob(&t[0], &base[0], n, f, &natural[0, 0], &log_norm[0], k, &out[0, 0])
            normalize_log_rows(&out[0, 0], n, k, &lse[0])


    def fit(floating[:, ::1] x, int[::1] col_kind, Py_ssize_t[::1] col_offset,
            double[::1] col_shift, double[:, ::1] natural, double[::1] log_norm,
            double[::1] slot):
        cdef Py_ssize_t n = x.shape[0], d = x.shape[1], k = log_norm.shape[0]
        cdef Py_ssize_t f = col_offset[d]
        cdef double[::1] work = np.empty(n * (f + k + 2))
        with nogil:
            chunk_fit(&x[0, 0], n, d, &col_kind[0], &col_offset[0], &col_shift[0], NULL, NULL,
                      &natural[0, 0], &log_norm[0], f, k, True, &work[0], &work[n * f],
                      &work[n * (f + k)], &work[n * (f + k + 1)], &slot[0],
                      &slot[slot.shape[0] - 2])
    """
)

@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    """A downstream extension that cimports expfam.pxd (see test_kernels_cimport.py)."""
    tmp = tmp_path_factory.mktemp("expfam_consumer")
    try:
        yield build_consumer(tmp, "fastem_expfam_consumer", CONSUMER)
    finally:
        if str(tmp) in sys.path:
            sys.path.remove(str(tmp))
        sys.modules.pop("fastem_expfam_consumer", None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_consumer_cimports_the_chunk_functions(consumer, dtype):
    assert consumer.CATEGORICAL == CATEGORICAL
    mix = Mixture(MIXED, 3, np.random.default_rng(18))
    X = data(mix, 50, dtype, 13)
    X[5, 0] = np.nan
    out, lse = np.empty((50, 3)), np.empty(50)
    consumer.log_prob(X, *mix.layout(), out, lse)
    log_prob, resp, _ = predict(mix, X, chunk_size=50, n_threads=1)
    np.testing.assert_array_equal(lse, log_prob)
    np.testing.assert_array_equal(out, resp)
    slot = np.zeros(expfam.stats_size(mix.f, 3) + 2)
    consumer.fit(X, *mix.layout(), slot)
    stats, worst = fit(mix, X, chunk_size=50, n_threads=1)
    np.testing.assert_array_equal(slot[:-2], stats)
    np.testing.assert_array_equal(slot[-2:], worst)
