"""float32 data of the Bernoulli, Categorical, Poisson and Exponential families compute in float32
(features, natural parameters, both GEMMs; expfam.pyx's log_prob_f32) where a chunk's rounding
bound allows: fits and per-row log-likelihoods within the README's bound (1e-3 nats per row) of
float64's, chunks whose counts are too large for float32 in float64, and results bitwise the
same for any thread count."""
import warnings

import numpy as np
import pytest

from fastem import BernoulliMixture, CategoricalMixture, ExponentialMixture, PoissonMixture
from fastem.families.gaussian import EXPFAM_MAX_ERROR

BOUND = EXPFAM_MAX_ERROR[np.dtype(np.float32)]


def table(name, n=4000, d=6, k=3, seed=0):
    """Rows of a k-component mixture of the family, as float32."""
    rng = np.random.RandomState(seed)
    z = rng.randint(k, size=n)
    if name == "bernoulli":
        X = rng.rand(n, d) < rng.uniform(0.05, 0.95, (k, d))[z]
    elif name == "categorical":
        X = (rng.rand(n, d, 1) > np.cumsum(rng.dirichlet(np.ones(4), (k, d)), axis=2)[z]).sum(2)
    elif name == "poisson":
        X = rng.poisson(rng.uniform(0.5, 60, (k, d))[z])
    else:
        X = rng.exponential(rng.uniform(0.1, 50, (k, d))[z])
    return X.astype(np.float32)


ESTIMATORS = {"bernoulli": BernoulliMixture, "categorical": CategoricalMixture,
              "poisson": PoissonMixture, "exponential": ExponentialMixture}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_float32_fit_within_the_bound_of_the_float64_fit(name):
    """Same random start: lower bounds and per-row log-likelihoods (the predict path) within
    1e-3 nats of float64's on the same values."""
    X32 = table(name)
    X64 = X32.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {dt: ESTIMATORS[name](3, init_params="random", random_state=0, tol=0,
                                     max_iter=8).fit(X) for dt, X in (("32", X32), ("64", X64))}
    assert abs(fits["32"].lower_bound_ - fits["64"].lower_bound_) < BOUND
    model = fits["64"]
    assert np.abs(model.score_samples(X32) - model.score_samples(X64)).max() < BOUND


def test_counts_too_large_for_float32_compute_in_float64():
    """Counts near 1e6 with rates near e^14: float32 rounding of x log(rate) alone would be
    ~1 nat per row, so those chunks run in float64 and agree with float64 data to its rounding
    (the shorter exp of float32 data aside, relative error < 1e-8)."""
    rng = np.random.RandomState(1)
    X32 = rng.poisson(rng.choice([8e5, 1.2e6], size=(2000, 1)) * np.ones(4)).astype(np.float32)
    X64 = X32.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PoissonMixture(2, random_state=0, max_iter=5).fit(X64)
    ours, exact = model.score_samples(X32), model.score_samples(X64)
    np.testing.assert_allclose(ours, exact, rtol=1e-8)


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")
@pytest.mark.parametrize("name", ["bernoulli", "poisson"])
def test_float32_fit_is_the_same_for_any_thread_count(name):
    X = table(name, n=3000)
    fits = [ESTIMATORS[name](3, init_params="random", random_state=0, tol=0, max_iter=4,
                             n_threads=threads, chunk_size=37).fit(X) for threads in (1, 2, 3)]
    for other in fits[1:]:
        assert other.lower_bound_ == fits[0].lower_bound_
        assert other.lower_bounds_ == fits[0].lower_bounds_
