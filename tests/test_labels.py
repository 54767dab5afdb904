"""Partially labelled rows: fit(X, y) with y holding a component per row, -1 for unlabelled
(scikit-learn's semi-supervised convention). A labelled row's posterior is clamped to its
component (one-hot) and adds log(w_k p_k(x)) to the lower bound; the other rows add log p(x).

The oracle is a per-row NumPy EM with the same clamping, from the same initial parameters.

Semi-supervised number (test_one_percent_of_labels_finds_the_overlapping_classes, 20 000 rows:
a broad class and two overlapping tight ones, 1 % labelled, diag): adjusted Rand index of the
unlabelled rows 0.42 unsupervised (k-means starts split the broad class and merge the tight
ones, and EM stays there) against 0.87 with the labels (EM starts from the labelled rows'
means and keeps the classes apart), seed 0; seeds 1-3 gave 0.415-0.420 against 0.84-0.88.
"""
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score

from fastem import GaussianMixture
from fastem.drivers.local import LocalDriver
from fastem.em import run_em
from fastem.families.expfam import ExpFamParams, Poisson, ProductFamily
from fastem.latent.mixture import Mixture, MixtureParams

N_ITER = 6


def overlapping(n=20000, seed=0):
    """A broad class (60 %) and two tight classes 1.2 apart (their standard deviation 0.5)."""
    rng = np.random.default_rng(seed)
    z = rng.choice(3, n, p=[0.6, 0.2, 0.2])
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [7.2, 0.0]])
    X = centres[z] + rng.normal(size=(n, 2)) * np.array([3.0, 0.5, 0.5])[z][:, None]
    return X, z


def partial_labels(z, fraction, seed=1):
    y = np.full(z.size, -1)
    labelled = np.random.default_rng(seed).random(z.size) < fraction
    y[labelled] = z[labelled]
    return y


def reference_diag_em(X, y, weights, means, var, n_iter):
    """Per-row EM, labelled rows clamped; mean objective per row after each E-step."""
    lls = []
    for _ in range(n_iter):
        resp = np.zeros((X.shape[0], len(weights)))
        ll = 0.0
        for i, x in enumerate(X):
            logp = np.log(weights) - 0.5 * (np.log(2 * np.pi * var)
                                            + (x - means) ** 2 / var).sum(axis=1)
            if y[i] >= 0:
                resp[i, y[i]] = 1.0
                ll += logp[y[i]]
            else:
                resp[i] = np.exp(logp - logsumexp(logp))
                ll += logsumexp(logp)
        lls.append(ll / X.shape[0])
        nk = resp.sum(axis=0)
        weights, means = nk / nk.sum(), resp.T @ X / nk[:, None]
        var = np.einsum("ik,ikj->kj", resp, (X[:, None, :] - means) ** 2) / nk[:, None] + 1e-6
    return weights, means, var, np.array(lls)


def test_gaussian_matches_reference(tmp_path):
    X, z = overlapping(n=1500)
    y = partial_labels(z, 0.1)
    weights, means = np.array([0.5, 0.25, 0.25]), np.array([[0.5, 0.5], [5.0, 0.0], [8.0, 0.0]])
    var = np.ones((3, 2))
    w, mu, v, lls = reference_diag_em(X, y, weights, means, var, N_ITER)
    np.save(tmp_path / "y.npy", y)
    fits = []
    for labels, threads in ((y, 1), (y, 2), (str(tmp_path / "y.npy"), 2)):
        model = GaussianMixture(3, covariance_type="diag", weights_init=weights, means_init=means,
                                precisions_init=1 / var, tol=0.0, max_iter=N_ITER,
                                n_threads=threads, chunk_size=64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # not converged
            fits.append(model.fit(X, labels))
    np.testing.assert_allclose(fits[0].weights_, w, rtol=1e-10)
    np.testing.assert_allclose(fits[0].means_, mu, rtol=1e-10)
    np.testing.assert_allclose(fits[0].covariances_, v, rtol=1e-10)
    np.testing.assert_allclose(fits[0].lower_bounds_, lls, rtol=1e-10)
    for other in fits[1:]:  # any thread count, labels from a file: bitwise the same
        assert np.array_equal(other.means_, fits[0].means_)


def test_product_family_matches_reference():
    """Compiled exponential-family kernel: the same clamping (Poisson columns)."""
    rng = np.random.default_rng(2)
    z = rng.integers(0, 2, 800)
    X = rng.poisson(np.array([[1.0, 4.0], [5.0, 1.0]])[z]).astype(np.float64)
    y = partial_labels(z, 0.2)
    rates, weights = np.array([[2.0, 3.0], [3.0, 2.0]]), np.array([0.5, 0.5])
    driver = LocalDriver(X, n_threads=2, chunk_size=64)
    driver.labels = y
    result = run_em(Mixture(), ProductFamily([Poisson(), Poisson()]), driver,
                    MixtureParams(weights, ExpFamParams([rates[:, :1], rates[:, 1:]])),
                    tol=0.0, max_iter=N_ITER, rng=np.random.RandomState(0))
    for _ in range(N_ITER):  # the reference: rates (K, D)
        logp = np.log(weights) + X @ np.log(rates).T - rates.sum(axis=1)  # up to log x!
        labelled = y >= 0
        logp[labelled] = np.where(np.arange(2) == y[labelled, None], logp[labelled], -np.inf)
        resp = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
        nk = resp.sum(axis=0)
        weights, rates = nk / nk.sum(), resp.T @ X / nk[:, None]
    np.testing.assert_allclose(result.params.weights, weights, rtol=1e-10)
    np.testing.assert_allclose(np.hstack(result.params.columns), rates, rtol=1e-10)


def test_one_percent_of_labels_finds_the_overlapping_classes():
    X, z = overlapping()
    y = partial_labels(z, 0.01)
    unlabelled = y < 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        unsupervised = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
        model = GaussianMixture(3, covariance_type="diag", random_state=0)
        predicted = model.fit_predict(X, y)
    plain = adjusted_rand_score(z[unlabelled], unsupervised.predict(X)[unlabelled])
    semi = adjusted_rand_score(z[unlabelled], predicted[unlabelled])
    assert plain < 0.5 and semi > 0.8, (plain, semi)
    np.testing.assert_array_equal(predicted[~unlabelled], y[~unlabelled])
    bounds = np.array(model.lower_bounds_)  # the clamped objective never decreases
    assert (np.diff(bounds) >= -1e-12 * np.abs(bounds[1:])).all()
    # score with the labels is the clamped objective the fit converged on, without them the
    # plain log-likelihood, which is higher (each labelled row adds log p(x) >= its clamp)
    assert abs(model.score(X, y) - model.lower_bound_) < 1e-3
    assert model.score(X) > model.score(X, y)


def test_targets_without_unlabelled_rows_are_ignored():
    """A y that marks no row with -1 is a target (pipelines pass one): ignored, as before."""
    X, z = overlapping(n=600)
    fits = [GaussianMixture(3, random_state=0).fit(X, target) for target in (None, z + 5)]
    assert np.array_equal(fits[0].means_, fits[1].means_)


def test_bad_labels_are_named():
    X, z = overlapping(n=300)
    y = partial_labels(z, 0.5)
    model = GaussianMixture(3)
    with pytest.raises(ValueError, match=r"one label per row.*\(300,\).*\(299,\)"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match="integer labels.*float64"):
        model.fit(X, y.astype(np.float64))
    bad = y.copy()
    bad[np.flatnonzero(y >= 0)[3]] = 3
    with pytest.raises(ValueError, match=rf"y\[{np.flatnonzero(y >= 0)[3]}\] = 3 .*\[-1, 3\)"):
        model.fit(X, bad)


def test_custom_family_clamps_too():
    """The Python skeleton of CustomFamily clamps as the kernels do: a log-normal family on
    exp(X) reaches the diag Gaussian reference's parameters on X."""
    pytest.importorskip("numba")
    from lognormal_family import LogNormalParams, make_family

    X, z = overlapping(n=1000)
    y = partial_labels(z, 0.1)
    weights, means = np.array([0.5, 0.25, 0.25]), np.array([[0.5, 0.5], [5.0, 0.0], [8.0, 0.0]])
    var = np.ones((3, 2))
    w, mu, v, _ = reference_diag_em(X, y, weights, means, var, N_ITER)
    driver = LocalDriver(np.exp(X), n_threads=2)
    driver.labels = y
    family = make_family(2)
    result = run_em(Mixture(), family, driver,
                    MixtureParams(weights, family.make_params(LogNormalParams(means, var), 2)),
                    tol=0.0, max_iter=N_ITER, rng=np.random.RandomState(0))
    np.testing.assert_allclose(result.params.weights, w, rtol=1e-10)
    np.testing.assert_allclose(result.params.components.mu, mu, rtol=1e-10)


def test_a_label_the_initialisation_cannot_honour_is_named():
    """A labelled component started with weight zero (weights_init) cannot take its rows:
    the error names the first such row and its component, locally and for the HMM's states
    that the chain cannot reach."""
    X, z = overlapping(n=600)
    y = np.full(z.size, -1)
    y[[40, 41]] = 0
    model = GaussianMixture(3, covariance_type="diag", weights_init=[0.0, 0.5, 0.5],
                            means_init=[[0.0, 0.0], [6.0, 0.0], [7.2, 0.0]], max_iter=3)
    with pytest.raises(ValueError, match="row 4[01] is labelled .y. with component 0, whose "
                                         "weight or density there is zero"):
        model.fit(X, y)
    model.fit(X)  # unlabelled, the same start fits (component 0 stays empty)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_online_em_with_labels_and_missing_entries_is_batch_em_on_one_block(covariance_type):
    """Stepwise and incremental EM over one block of every row (kappa = 1, tau = 0: rho = 1)
    and a first partial_fit are batch EM, with partial labels and 20 % of entries missing
    (nan_policy="marginalize"); a later batch's labels count, and a batch with bad labels
    raises naming its label and leaves the model as it was."""
    X, z = overlapping(n=1500)
    X[np.random.default_rng(3).random(X.shape) < 0.2] = np.nan
    y = partial_labels(z, 0.1)
    start = dict(weights_init=[0.5, 0.25, 0.25], means_init=[[0.5, 0.5], [5.0, 0.0], [8.0, 0.0]],
                 covariance_type=covariance_type, nan_policy="marginalize", tol=0.0)
    names = ("weights_", "means_", "covariances_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with no observed entry; not converged
        for n_iter in (1, 2):
            batch = GaussianMixture(3, max_iter=n_iter, **start).fit(X, y)
            for algorithm in ("stepwise", "incremental"):
                online = GaussianMixture(3, max_iter=n_iter, algorithm=algorithm,
                                         batch_size=len(X), learning_decay=1.0,
                                         learning_offset=0.0, **start).fit(X, y)
                for name in names:
                    np.testing.assert_allclose(getattr(online, name), getattr(batch, name),
                                               rtol=1e-10, err_msg=name)
                np.testing.assert_allclose(online.lower_bounds_, batch.lower_bounds_, rtol=1e-12)
        single = GaussianMixture(3, **start).partial_fit(X, y)
        batch = GaussianMixture(3, max_iter=1, **start).fit(X, y)
        for name in names:
            np.testing.assert_allclose(getattr(single, name), getattr(batch, name), rtol=1e-10)
        unlabelled = GaussianMixture(3, **start).partial_fit(X[:700])
        labelled = GaussianMixture(3, **start).partial_fit(X[:700])
        unlabelled.partial_fit(X[700:])
        labelled.partial_fit(X[700:], y[700:])
        assert not np.allclose(labelled.means_, unlabelled.means_)
        before = labelled.means_.copy()
        bad = y[700:].copy()
        bad[5] = 3
        with pytest.raises(ValueError, match=r"y\[5\] = 3 is not a component"):
            labelled.partial_fit(X[700:], bad)
        np.testing.assert_array_equal(labelled.means_, before)
