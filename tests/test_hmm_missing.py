"""Hidden Markov models with missing entries (``nan_policy="marginalize"``) and labelled time
steps (``fit(X, lengths, y)``, -1 unlabelled).

The oracle is a NumPy forward-backward written here, in the log domain, over emission
log-densities computed row by row from each row's observed entries (a row that is all NaN has
density one); a labelled row keeps only its state's density. Its M-step is hmmlearn's
GaussianHMM update (default priors) on the observed-data statistics: diag and spherical
divide each entry's sums by the posterior mass of the rows observing it, full and tied take
the conditional mean and covariance of the missing entries given the observed ones (exact
EM). fastem must match it to 1e-10 from the same initial parameters.
"""

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from fastem import hmm
from fastem.families.expfam import Normal, ProductFamily

N_ITER = 5
LENGTHS = [150, 90, 160]
PSI, NU = 1e-2, 1.0  # GaussianHMM's default covars_prior and covars_weight


def mcar(X, fraction, seed):
    """X with ``fraction`` of its entries NaN completely at random, and rows 7 and 200 all NaN."""
    X = np.array(X, dtype=np.float64)
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    X[[7, 200]] = np.nan
    return X


def chain_data(n=400, d=3, seed=0):
    """A 3-state sticky chain with Gaussian emissions, and the true states."""
    rng = np.random.default_rng(seed)
    z = np.zeros(n, dtype=int)
    for t in range(1, n):
        z[t] = z[t - 1] if rng.random() < 0.9 else rng.integers(3)
    centres = np.array([[0.0] * d, [3.0] * d, [-3.0, 3.0, 0.0][:d]])
    return centres[z] + rng.normal(size=(n, d)), z


def start(d, seed=1):
    rng = np.random.default_rng(seed)
    startprob = np.array([0.5, 0.3, 0.2])
    transmat = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    means = np.array([[0.0] * d, [3.0] * d, [-3.0, 3.0, 0.0][:d]]) + rng.normal(scale=0.5,
                                                                               size=(3, d))
    a = rng.normal(size=(3, d, d)) * 0.3
    full = np.eye(d) + a @ a.transpose(0, 2, 1)
    return startprob, transmat, means, full


def covars_of(covariance_type, full):
    return {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
            "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]


def as_full(covariance_type, covars, k, d):
    if covariance_type == "full":
        return covars
    if covariance_type == "tied":
        return np.repeat(covars[None], k, axis=0)
    diag = covars if covariance_type == "diag" else np.repeat(covars[:, None], d, axis=1)
    return np.einsum("kd,de->kde", diag, np.eye(d))


def log_emissions(X, means, covs):
    """log N(x_o; mu_k,o, S_k,oo) of each row's observed entries o (0 where none is)."""
    out = np.zeros((X.shape[0], means.shape[0]))
    for t, x in enumerate(X):
        o = ~np.isnan(x)
        if not o.any():
            continue
        for k in range(means.shape[0]):
            s = covs[k][np.ix_(o, o)]
            r = x[o] - means[k, o]
            out[t, k] = -0.5 * (o.sum() * np.log(2 * np.pi) + np.linalg.slogdet(s)[1]
                                + r @ np.linalg.solve(s, r))
    return out


def forward_backward(logb, startprob, transmat, lengths):
    """Log-domain forward-backward: (log-likelihood, posteriors, start and transition counts)."""
    ll, gamma = 0.0, np.zeros_like(logb)
    start_counts, trans = np.zeros(len(startprob)), np.zeros_like(transmat)
    with np.errstate(divide="ignore"):
        log_a, log_pi = np.log(transmat), np.log(startprob)
    first = 0
    for length in lengths:
        b = logb[first:first + length]
        alpha, beta = np.empty_like(b), np.zeros_like(b)
        alpha[0] = log_pi + b[0]
        for t in range(1, length):
            alpha[t] = logsumexp(alpha[t - 1][:, None] + log_a, axis=0) + b[t]
        for t in range(length - 2, -1, -1):
            beta[t] = logsumexp(log_a + (b[t + 1] + beta[t + 1])[None, :], axis=1)
        seq_ll = logsumexp(alpha[-1])
        ll += seq_ll
        g = np.exp(alpha + beta - seq_ll)
        gamma[first:first + length] = g
        start_counts += g[0]
        for t in range(length - 1):
            trans += np.exp(alpha[t][:, None] + log_a + (b[t + 1] + beta[t + 1])[None, :]
                            - seq_ll)
        first += length
    return ll, gamma, start_counts, trans


def clamp(logb, y):
    """Labelled rows keep only their state's log-density."""
    if y is None:
        return logb
    logb = logb.copy()
    for t in np.flatnonzero(y >= 0):
        keep = logb[t, y[t]]
        logb[t] = -np.inf
        logb[t, y[t]] = keep
    return logb


def gaussian_m_step(covariance_type, X, gamma, means, covs):
    """hmmlearn's GaussianHMM M-step (means_weight 0) on the observed-data statistics."""
    t, (k, d) = covariance_type, means.shape
    seen = ~np.isnan(X)
    if t in ("diag", "spherical"):
        x0 = np.where(seen, X, 0.0)
        n = gamma.T @ seen
        new = gamma.T @ x0 / n
        scatter = np.stack([(gamma[:, [j]] * seen * (x0 - new[j]) ** 2).sum(axis=0)
                            for j in range(k)])
        if t == "diag":
            return new, (PSI + scatter) / np.maximum(max(NU - 1, 0) + n, 1e-5)
        return new, (PSI + scatter.sum(axis=1) / d) / np.maximum(max(NU - 1, 0)
                                                                 + n.mean(axis=1), 1e-5)
    xhat = np.repeat(np.nan_to_num(X)[:, None, :], k, axis=1)  # (n, k, d) conditional means
    cond = np.zeros((X.shape[0], k, d, d))  # conditional covariances of the missing block
    for i, x in enumerate(X):
        o = seen[i]
        m = ~o
        for j in range(k):
            s = covs[j]
            if o.any():
                reg = s[np.ix_(m, o)] @ np.linalg.inv(s[np.ix_(o, o)])
                xhat[i, j, m] = means[j, m] + reg @ (x[o] - means[j, o])
                cond[i, j][np.ix_(m, m)] = s[np.ix_(m, m)] - reg @ s[np.ix_(o, m)]
            else:
                xhat[i, j] = means[j]
                cond[i, j] = s
    keep = seen.any(axis=1)
    g = gamma * keep[:, None]
    nk = g.sum(axis=0)
    new = np.einsum("ik,ikd->kd", g, xhat) / nk[:, None]
    off = xhat - new[None]
    scatter = np.einsum("ik,ikd,ike->kde", g, off, off) + np.einsum("ik,ikde->kde", g, cond)
    if t == "full":
        return new, (PSI + scatter) / (max(NU - d, 0) + nk)[:, None, None]
    return new, (PSI + scatter.sum(axis=0)) / (max(NU - d, 0) + nk.sum())


def reference_fit(covariance_type, X, lengths, startprob, transmat, means, full, n_iter,
                  y=None):
    history = []
    k, d = means.shape
    covs = full
    for _ in range(n_iter):
        logb = clamp(log_emissions(X, means, covs), y)
        ll, gamma, s, trans = forward_backward(logb, startprob, transmat, lengths)
        history.append(ll)
        startprob = s / s.sum()
        transmat = trans / trans.sum(axis=1, keepdims=True)
        means, covars = gaussian_m_step(covariance_type, X, gamma, means, covs)
        covs = as_full(covariance_type, covars, k, d)
    return startprob, transmat, means, covs, np.array(history)


def gaussian_model(covariance_type, startprob, transmat, means, full, **options):
    options = {"nan_policy": "marginalize", **options}
    model = hmm.GaussianHMM(3, covariance_type=covariance_type, n_iter=N_ITER, tol=-np.inf,
                            init_params="", **options)
    model.startprob_, model.transmat_, model.means_ = startprob, transmat, means
    model.covars_ = covars_of(covariance_type, full)
    return model


@pytest.mark.parametrize("fraction", [0.1, 0.3])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
def test_gaussian_hmm_matches_reference(covariance_type, fraction):
    X = mcar(chain_data()[0], fraction, seed=2)
    startprob, transmat, means, full = start(X.shape[1])
    full = as_full(covariance_type, covars_of(covariance_type, full), 3, X.shape[1])
    expected = reference_fit(covariance_type, X, LENGTHS, startprob, transmat, means, full,
                             N_ITER)
    model = gaussian_model(covariance_type, startprob, transmat, means, full, chunk_size=32)
    model.fit(X, LENGTHS)
    history = np.array(model.monitor_.history)
    np.testing.assert_allclose(history, expected[4], rtol=1e-10)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert_params(model, expected)


def assert_params(model, expected):
    for name, value in zip(("startprob_", "transmat_", "means_", "covars_"), expected):
        np.testing.assert_allclose(getattr(model, name), value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_one_long_sequence_in_segments_and_threads(covariance_type):
    """One sequence of 400 rows streamed in segments of 64 rows (chunk_size=1), for 1 and 2
    threads: the reference's fit, and bitwise the same for both thread counts."""
    X = mcar(chain_data()[0], 0.3, seed=3)
    startprob, transmat, means, full = start(X.shape[1])
    full = as_full(covariance_type, covars_of(covariance_type, full), 3, X.shape[1])
    expected = reference_fit(covariance_type, X, [X.shape[0]], startprob, transmat, means,
                             full, N_ITER)
    fits = [gaussian_model(covariance_type, startprob, transmat, means, full, chunk_size=1,
                           n_threads=n).fit(X) for n in (1, 2)]
    np.testing.assert_allclose(fits[0].monitor_.history, expected[4], rtol=1e-10)
    assert_params(fits[0], expected)
    assert list(fits[0].monitor_.history) == list(fits[1].monitor_.history)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_labelled_steps_clamp_the_state(covariance_type, tmp_path):
    """y (-1 unlabelled) clamps labelled rows' states: the reference with the other states'
    densities set to zero there, with missing entries too; a .npy path of y fits the same,
    labelled rows get one-hot posteriors and the history never decreases."""
    X, z = chain_data(seed=4)
    X = mcar(X, 0.2, seed=5)
    y = np.where(np.random.default_rng(6).random(z.size) < 0.1, z, -1)
    startprob, transmat, means, full = start(X.shape[1])
    full = as_full(covariance_type, covars_of(covariance_type, full), 3, X.shape[1])
    expected = reference_fit(covariance_type, X, LENGTHS, startprob, transmat, means, full,
                             N_ITER, y=y)
    np.save(tmp_path / "y.npy", y)
    for labels, threads in ((y, 1), (str(tmp_path / "y.npy"), 2)):
        model = gaussian_model(covariance_type, startprob, transmat, means, full, chunk_size=16,
                               n_threads=threads).fit(X, LENGTHS, y=labels)
        history = np.array(model.monitor_.history)
        np.testing.assert_allclose(history, expected[4], rtol=1e-10)
        assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
        assert_params(model, expected)


def test_labels_change_the_fit_and_a_target_without_unlabelled_rows_is_ignored():
    X, z = chain_data(seed=4)
    startprob, transmat, means, full = start(X.shape[1])
    make = lambda: gaussian_model("diag", startprob, transmat, means, full,  # noqa: E731
                                  nan_policy="raise")
    plain = make().fit(X, LENGTHS)
    assert make().fit(X, LENGTHS, y=z).monitor_.history == plain.monitor_.history
    y = np.where(np.arange(z.size) % 5 == 0, (z + 1) % 3, -1)  # wrong labels move the fit
    assert make().fit(X, LENGTHS, y=y).monitor_.history[-1] < plain.monitor_.history[-1]


def test_poisson_and_any_family_marginalise():
    """PoissonHMM and HMM over a product family: the reference with per-entry emissions
    (a missing entry drops out), rates and means divided by the mass observing each entry."""
    X, z = chain_data(seed=7)
    counts = np.random.default_rng(8).poisson(np.exp(X / 3)).astype(np.float64)
    counts = mcar(counts, 0.3, seed=9)
    startprob, transmat, _, _ = start(3)
    rates = np.array([[1.0, 1.5, 2.0], [3.0, 2.5, 2.0], [0.5, 3.0, 1.0]])
    model = hmm.PoissonHMM(3, n_iter=N_ITER, tol=-np.inf, init_params="",
                           nan_policy="marginalize", chunk_size=16)
    model.startprob_, model.transmat_, model.lambdas_ = startprob, transmat, rates
    model.fit(counts, LENGTHS)
    seen = ~np.isnan(counts)
    x0 = np.where(seen, counts, 0.0)
    history, lam, pi, a = [], rates, startprob, transmat
    for _ in range(N_ITER):
        logb = np.stack([(seen * (x0 * np.log(lam[k]) - lam[k])).sum(axis=1)
                         for k in range(3)], axis=1)
        logb -= (seen * gammaln(x0 + 1)).sum(axis=1)[:, None]
        ll, gamma, s, trans = forward_backward(logb, pi, a, LENGTHS)
        history.append(ll)
        pi, a = s / s.sum(), trans / trans.sum(axis=1, keepdims=True)
        lam = (gamma.T @ x0) / (gamma.T @ seen)
    np.testing.assert_allclose(model.monitor_.history, history, rtol=1e-10)
    np.testing.assert_allclose(model.lambdas_, lam, rtol=1e-10)
    np.testing.assert_allclose(model.transmat_, a, rtol=1e-10)

    family = ProductFamily([Normal(), Normal(), Normal()])
    X = mcar(X, 0.3, seed=10)
    any_family = hmm.HMM(family, 3, n_iter=8, tol=-np.inf, random_state=0,
                         nan_policy="marginalize").fit(X, LENGTHS)
    history = np.array(any_family.monitor_.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert np.isfinite(any_family.score(X, LENGTHS))


@pytest.mark.parametrize("make", [
    lambda: hmm.GaussianHMM(3, covariance_type="full", n_iter=8, random_state=0),
    lambda: hmm.GaussianHMM(3, covariance_type="spherical", n_iter=8, random_state=0),
    lambda: hmm.PoissonHMM(3, n_iter=8, random_state=0),
])
def test_default_initialisation_and_every_method(make):
    """From hmmlearn's default starts (column means fill the missing entries for k-means and
    the covariances), the fit's log-likelihood never decreases; score, predict, decode and
    predict_proba take rows with missing entries; a complete row scores as under "raise"."""
    X = np.round(np.abs(mcar(chain_data()[0], 0.3, seed=11)))  # counts for PoissonHMM
    model = make().set_params(nan_policy="marginalize").fit(X, LENGTHS)
    history = np.array(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert model.score(X, LENGTHS) >= history[-1]  # after one more M-step
    assert model.predict(X, LENGTHS).shape == (X.shape[0],)
    assert np.allclose(model.predict_proba(X, LENGTHS).sum(axis=1), 1.0)
    assert model.decode(X, LENGTHS, algorithm="map")[1].shape == (X.shape[0],)
    complete = X[np.isfinite(X).all(axis=1)]
    as_raise = model.set_params(nan_policy="raise").score(complete)
    assert model.set_params(nan_policy="marginalize").score(complete) == as_raise
    # inference needs no column observed: a row with its first entry alone scores as the
    # first column's marginal, and a sequence of missing rows has probability one
    alone = np.full((1, X.shape[1]), np.nan)
    alone[0, 0] = x0 = complete[0, 0]
    if isinstance(model, hmm.GaussianHMM):
        var = model.covars_[:, 0, 0]
        density = np.exp(-0.5 * (x0 - model.means_[:, 0]) ** 2 / var) / np.sqrt(2 * np.pi * var)
    else:
        rate = model.lambdas_[:, 0]
        density = np.exp(x0 * np.log(rate) - rate - gammaln(x0 + 1))
    assert model.score(alone) == pytest.approx(np.log(model.startprob_ @ density), rel=1e-12)
    assert model.score(np.full((3, X.shape[1]), np.nan)) == pytest.approx(0.0, abs=1e-15)


def test_bad_input_names_the_problem():
    X = mcar(chain_data()[0], 0.1, seed=12)
    model = hmm.GaussianHMM(3, nan_policy="marginalize", n_iter=2)
    infinite = X.copy()
    infinite[33, 1] = np.inf
    with pytest.raises(ValueError, match="infinity .*row 33"):
        model.fit(infinite)
    never = X.copy()
    never[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2 is missing"):
        model.fit(never)
    with pytest.raises(ValueError, match="one label per row"):
        model.fit(X, y=np.full(5, -1))
    with pytest.raises(ValueError, match="integer labels"):
        model.fit(X, y=np.full(X.shape[0], -1.0))
    y = np.full(X.shape[0], -1)
    y[9] = 3
    with pytest.raises(ValueError, match=r"y\[9\] = 3 is not a component"):
        model.fit(X, y=y)
    with pytest.raises(ValueError, match="MultinomialFamily cannot marginalise"):
        hmm.MultinomialHMM(2, nan_policy="marginalize").fit(np.array([[1.0, np.nan], [2, 0]]))
    with pytest.raises(ValueError, match="nan_policy must be"):
        hmm.GaussianHMM(2, nan_policy="drop").fit(X)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
def test_gmmhmm_marginalises(covariance_type):
    """GMMHMM: on complete data the marginal kernels give the complete-data fit (1e-10); with
    30 % of entries missing the log-likelihood never decreases and is finite; a row that is
    all NaN is a missing observation under "omit" too (its statistics weighted zero)."""
    X = chain_data()[0]
    make = lambda policy: hmm.GMMHMM(3, n_mix=2, covariance_type=covariance_type,  # noqa: E731
                                     n_iter=6, tol=-np.inf, random_state=0, nan_policy=policy)
    complete = make("raise").fit(X, LENGTHS)
    marginal = make("marginalize").fit(X, LENGTHS)
    np.testing.assert_allclose(marginal.monitor_.history, complete.monitor_.history, rtol=1e-10)
    for name in ("weights_", "means_", "covars_", "transmat_"):
        np.testing.assert_allclose(getattr(marginal, name), getattr(complete, name), rtol=1e-8,
                                   atol=1e-10)
    missing = mcar(X, 0.3, seed=13)
    history = np.array(make("marginalize").fit(missing, LENGTHS).monitor_.history)
    assert np.isfinite(history).all()
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    X[[7, 200]] = np.nan
    history = np.array(make("omit").fit(X, LENGTHS).monitor_.history)
    assert np.isfinite(history).all()
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))


def test_categorical_hmm_marginalising_equals_omitting():
    """One column of codes: a NaN row has no observed entry, a missing observation under
    both policies, so the fits agree."""
    codes = np.random.default_rng(14).integers(0, 4, size=(300, 1)).astype(np.float64)
    codes[[3, 50, 51, 299]] = np.nan
    fits = [hmm.CategoricalHMM(2, n_iter=5, tol=-np.inf, random_state=0, nan_policy=policy)
            .fit(codes, [100, 200]) for policy in ("omit", "marginalize")]
    np.testing.assert_allclose(fits[1].monitor_.history, fits[0].monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(fits[1].emissionprob_, fits[0].emissionprob_, rtol=1e-10)


def test_a_state_the_chain_cannot_reach_is_named():
    """Left-right chain (state 2 never left, state 0 never entered again): a row labelled 0
    after the chain has left state 0 makes its sequence impossible, an error naming the
    sequence's first row and the labels."""
    X = chain_data()[0]
    startprob, _, means, full = start(X.shape[1])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    y = np.full(X.shape[0], -1)
    y[[150, 200]] = [2, 0]  # the second sequence starts at row 150
    model = gaussian_model("diag", startprob, transmat, means, full, nan_policy="raise")
    with pytest.raises(ValueError, match="sequence starting at row 150 has zero likelihood "
                                         "given its labels"):
        model.fit(X, LENGTHS, y=y)
