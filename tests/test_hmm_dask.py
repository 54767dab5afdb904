"""Hidden Markov models on Dask arrays: sequences spread over a two-process cluster give the
local fit, scores, posteriors and paths."""
import numpy as np
import pytest

from fastem import hmm

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from test_dask import client  # noqa: E402, F401  (the two-process cluster fixture)
from test_hmm_streaming import K, given, sticky_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("client")


def make(**kw):
    return given(hmm.GaussianHMM(K, "diag", n_iter=6, tol=-np.inf, init_params="", **kw))


@pytest.mark.parametrize("nan_policy", ["raise", "omit"])
def test_dask_sequences_equal_the_local_fit(nan_policy):
    X = sticky_data(3000, seed=9)
    if nan_policy == "omit":
        X[[0, 17, 18, 1500, 2999]] = np.nan
    # sequences cross the dask blocks (of 400 rows); one is longer than a block
    lengths = np.array([350, 120, 900, 30, 600, 1000])
    local = make(nan_policy=nan_policy, chunk_size=8).fit(X, lengths)
    dX = da.from_array(X, chunks=(400, 2))
    remote = make(nan_policy=nan_policy, chunk_size=8).fit(dX, lengths)
    np.testing.assert_allclose(remote.monitor_.history, local.monitor_.history, rtol=1e-12)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=1e-10)
    for name in ("startprob_", "transmat_", "means_", "_covars_"):  # inference: same model
        setattr(remote, name, getattr(local, name))
    assert remote.score(dX, lengths) == pytest.approx(local.score(X, lengths), rel=1e-14)
    np.testing.assert_allclose(remote.predict_proba(dX, lengths),
                               local.predict_proba(X, lengths), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(remote.predict(dX, lengths), local.predict(X, lengths))


def test_dask_errors_name_global_rows():
    X = sticky_data(1000, seed=10)
    X[777, 1] = np.nan
    dX = da.from_array(X, chunks=(250, 2))
    with pytest.raises(ValueError, match="row 777"):
        make().fit(dX, [500, 500])
    with pytest.raises(ValueError, match="row 777 holds NaN beside numbers"):
        make(nan_policy="omit").fit(dX, [500, 500])


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_marginalised_and_labelled_sequences_equal_the_local_fit(covariance_type):
    """nan_policy="marginalize" (30 % of entries missing, some rows all NaN) with partial
    labels, given as a numpy or a dask array (blocked unlike X): the local fit to 1e-12."""
    X = sticky_data(3000, seed=11)
    rng = np.random.default_rng(11)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[[0, 17, 18, 2999]] = np.nan
    y = np.where(rng.random(X.shape[0]) < 0.05, rng.integers(0, K, X.shape[0]), -1)
    lengths = np.array([350, 120, 900, 30, 600, 1000])
    options = dict(covariance_type=covariance_type, nan_policy="marginalize", chunk_size=8,
                   n_iter=5, tol=-np.inf, random_state=0)
    local = hmm.GaussianHMM(K, **options).fit(X, lengths, y)
    dX = da.from_array(X, chunks=(400, 2))
    for labels in (y, da.from_array(y, chunks=700)):
        remote = hmm.GaussianHMM(K, **options).fit(dX, lengths, labels)
        np.testing.assert_allclose(remote.monitor_.history, local.monitor_.history, rtol=1e-12)
        for name in ("startprob_", "transmat_", "means_", "covars_"):
            np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=1e-10,
                                       atol=1e-13)
    assert remote.score(dX, lengths) == pytest.approx(local.score(X, lengths), rel=1e-12)
    infinite = X.copy()
    infinite[2345, 0] = np.inf
    with pytest.raises(ValueError, match="first at row 2345"):
        hmm.GaussianHMM(K, **options).fit(da.from_array(infinite, chunks=(400, 2)), lengths)
