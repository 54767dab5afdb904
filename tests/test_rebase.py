"""Statistics in a fixed frame: passes made with different parameters (different pivots and
kernel layouts), restated in a third frame by ``family.rebase`` and added, equal one pass made
in that frame, for every family and covariance type."""
import numpy as np
import pytest

from fastem.drivers.local import LocalDriver
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
from fastem.families.gaussian import (
    KIND_EXPFAM_SPHERICAL,
    KIND_EXPFAM_TIED,
    GaussianFamily,
    GaussianParams,
)
from fastem.latent.mixture import Mixture, MixtureParams

K, N = 3, 600
MIXTURE = Mixture()


def pass_with(family, packed, X, resp, weights):
    """Statistics of X under given responsibilities, in ``packed``'s frame."""
    driver = LocalDriver(X, weights, chunk_size=64, n_threads=2)
    return driver.accumulate(family, packed, resp_fn=lambda s, b: resp[s:s + len(b)])[0]


def check_rebase(family, packings, X, resp, weights, rtol=1e-12):
    """Halves of the data in the first two frames, rebased to the third and added, against
    the whole data in the third frame."""
    first, second, target = packings
    half = N // 2
    parts = [family.rebase(pass_with(family, p, X[rows], resp[rows], weights[rows]), p, target)
             for p, rows in ((first, slice(0, half)), (second, slice(half, N)))]
    whole = pass_with(family, target, X, resp, weights)
    np.testing.assert_allclose(parts[0] + parts[1], whole, rtol=rtol,
                               atol=rtol * np.abs(whole).max())


def gaussian_params(covariance_type, rng, shift):
    d = 3
    means = rng.normal(size=(K, d)) + shift
    cov = {"full": lambda: np.stack([np.eye(d) * v for v in (1.0, 2.0, 0.5)]),
           "tied": lambda: np.eye(d) * 1.5,
           "diag": lambda: rng.uniform(0.5, 2.0, (K, d)),
           "spherical": lambda: rng.uniform(0.5, 2.0, K)}[covariance_type]()
    return MixtureParams(rng.dirichlet(np.ones(K)),
                         GaussianParams.from_covariances(covariance_type, means, cov))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_statistics_rebase(covariance_type, dtype):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(N, 3)) * 2 + 1).astype(dtype)
    resp = rng.dirichlet(np.ones(K), N)
    weights = rng.uniform(0, 2, N)
    family = GaussianFamily(covariance_type)
    # the exponential-family form (centred on the weighted mean of the means), the exact
    # kernels (centred on each component's pivot), and a third expfam frame elsewhere
    packings = [MIXTURE.pack(family, gaussian_params(covariance_type, rng, 0.0), dtype),
                family.pack_pivot(rng.normal(size=(K, 3)) * 3, dtype),
                MIXTURE.pack(family, gaussian_params(covariance_type, rng, 4.0), dtype)]
    assert packings[0].kind != packings[1].kind
    # float32 data are centred in float32 by the kernels: each pass rounds at float32's eps
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    check_rebase(family, packings, X, resp, weights, rtol)
    if packings[2].kind not in (KIND_EXPFAM_TIED, KIND_EXPFAM_SPHERICAL):
        # per-component layouts restate both ways: into the exact kernels' frame too
        check_rebase(family, [packings[0], packings[2], packings[1]], X, resp, weights, rtol)


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_pooled_statistics_restated_per_component_give_the_same_m_step(covariance_type):
    """Moments pooled over components (tied) or dimensions (spherical) cannot be split again;
    restated in the exact kernels' per-component frame, they give the M-step of a pass made in
    that frame."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N, 3)) * 2 + 1
    resp = rng.dirichlet(np.ones(K), N)
    weights = rng.uniform(0, 2, N)
    family = GaussianFamily(covariance_type)
    pooled = MIXTURE.pack(family, gaussian_params(covariance_type, rng, 0.0), np.float64)
    exact = family.pack_pivot(rng.normal(size=(K, 3)), np.float64)
    assert pooled.kind in (KIND_EXPFAM_TIED, KIND_EXPFAM_SPHERICAL)
    rebased = family.rebase(pass_with(family, pooled, X, resp, weights), pooled, exact)
    direct = pass_with(family, exact, X, resp, weights)
    ours, theirs = (MIXTURE.m_step(family, s, exact)[0] for s in (rebased, direct))
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-12,
                                   err_msg=name)


def product_table(rng):
    z = rng.integers(0, K, N)
    X = np.column_stack([rng.normal(10 * z + 100, 1.0), rng.poisson(2 + 3 * z),
                         rng.integers(0, 2, N), rng.integers(0, 3, N),
                         rng.gamma(2 + z, 1.0), rng.exponential(1 + z)])
    family = ProductFamily([Normal(), Poisson(), Bernoulli(), Categorical(3), Gamma(),
                            Exponential()])

    def params(shift):
        return MixtureParams(rng.dirichlet(np.ones(K)), ExpFamParams([
            np.column_stack([rng.normal(100 + shift, 5, K), rng.uniform(0.5, 2, K)]),
            rng.uniform(1, 5, (K, 1)), rng.uniform(0.2, 0.8, (K, 1)),
            rng.dirichlet(np.ones(3), K), rng.uniform(1, 3, (K, 2)),
            rng.uniform(0.5, 2, (K, 1))]))

    return X, family, params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_product_family_statistics_rebase(dtype):
    rng = np.random.default_rng(2)
    X, family, params = product_table(rng)
    packings = [MIXTURE.pack(family, params(shift), dtype) for shift in (-20.0, 0.0, 30.0)]
    assert len({p.col_shift[0] for p in packings}) == 3
    resp = rng.dirichlet(np.ones(K), N)
    check_rebase(family, packings, X.astype(dtype), resp, rng.uniform(0, 2, N))


def test_custom_family_statistics_are_frame_free():
    pytest.importorskip("numba")
    from test_custom_family import vm, vm_params

    rng = np.random.default_rng(3)
    X, _ = vm.make_data(n=N, seed=4)
    family = vm.make_family(2)
    packings = [MIXTURE.pack(family, vm_params(family, X, rows), np.float64)
                for rows in ([0, 1, 2], [3, 4, 5], [6, 7, 8])]
    check_rebase(family, packings, X, rng.dirichlet(np.ones(K), N), rng.uniform(0, 2, N))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multinomial_statistics_are_frame_free(dtype):
    from fastem.families.multinomial import MultinomialFamily, MultinomialParams

    rng = np.random.default_rng(5)
    X = rng.multinomial(20, [0.1, 0.2, 0.3, 0.4], N).astype(dtype)
    family = MultinomialFamily(20)
    packings = [MIXTURE.pack(family, MixtureParams(rng.dirichlet(np.ones(K)), MultinomialParams(
        rng.dirichlet(np.ones(4), K))), dtype) for _ in range(3)]
    check_rebase(family, packings, X, rng.dirichlet(np.ones(K), N), rng.uniform(0, 2, N))


@pytest.mark.parametrize("emissions", ["gaussian-full", "gmm-diag", "gmm-full", "gmm-tied",
                                       "gmm-spherical"])
def test_hidden_markov_statistics_rebase(emissions):
    """A hidden Markov pass's statistics restated in another packing's frame (pivots 20
    apart, data at 30 from the origin) give the same M-step (hmmlearn's GMMHMM one reads the
    scatter about the E-step's means): the emissions' sums move, the chain's counts stay."""
    from fastem.drivers.sequences import SequenceDriver
    from fastem.families.gaussian_hmmlearn import HMMLearnGaussianFamily
    from fastem.families.gmm_hmmlearn import GMMHMMLearnFamily, GMMParams, default_priors
    from fastem.latent.hmm import HiddenMarkov, HMMParams

    rng = np.random.default_rng(6)
    d, m = 2, 2
    X = rng.normal(size=(N, d)) + 30.0
    kind, covariance_type = emissions.split("-")
    if kind == "gaussian":
        family = HMMLearnGaussianFamily(covariance_type, means_prior=29.0, means_weight=2.0)

        def emission(shift):
            means = X[[0, 100, 200]] + shift
            return GaussianParams.from_covariances(covariance_type, means,
                                                   np.stack([np.eye(d)] * K))
    else:
        family = GMMHMMLearnFamily(covariance_type, m, *default_priors(
            covariance_type, K, m, d, 1.5, 29.0, 2.0, None, None))
        shape = {"spherical": (K, m), "diag": (K, m, d), "full": (K, m, d, d),
                 "tied": (K, d, d)}[covariance_type]
        covars = np.ones(shape) if len(shape) < 3 or covariance_type == "diag" \
            else np.broadcast_to(np.eye(d), shape).copy()

        def emission(shift):
            return GMMParams(covariance_type, rng.dirichlet(np.ones(m), K),
                             X[:K * m].reshape(K, m, d) + shift, covars)
    latent = HiddenMarkov(1.5, 2.0)
    chain = (rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), K))
    params, other = HMMParams(*chain, emission(0.0)), HMMParams(*chain, emission(-20.0))
    driver = SequenceDriver(X, [200, 150, 250], chunk_size=64, n_threads=2)
    packed, target = (latent.pack(family, p, np.float64) for p in (params, other))
    stats, _ = driver.accumulate(family, packed)
    rebased = latent.rebase(family, stats, packed, target)
    assert not np.allclose(rebased, stats)
    size = K + K * K
    np.testing.assert_array_equal(rebased[-size:], stats[-size:])
    ours, theirs = (latent.m_step(family, s, p, params)[0]
                    for s, p in ((rebased, target), (stats, packed)))
    for a, b in ((ours.startprob, theirs.startprob), (ours.transmat, theirs.transmat),
                 *zip(vars(ours.components).values(), vars(theirs.components).values())):
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-9)
