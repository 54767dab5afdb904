"""Data helpers shared by the tests: small mixtures with known parameters."""
import numpy as np


def make_blobs(n=2000, d=3, k=3, seed=0, spread=6.0, offset=0.0):
    """Points from k anisotropic Gaussians with well separated means; returns X, labels, means."""
    rng = np.random.RandomState(seed)
    means = spread * rng.randn(k, d) + offset
    labels = rng.randint(0, k, n)
    mixing = [np.eye(d) + 0.3 * rng.randn(d, d) for _ in range(k)]
    X = np.vstack([rng.randn(1, d) @ mixing[z] for z in labels]) + means[labels]
    return X, labels, means


def sklearn_start(X, k, covariance_type, seed=1):
    """Initial parameters from one sklearn iteration, as keyword arguments for either estimator."""
    from sklearn.mixture import GaussianMixture

    start = GaussianMixture(k, covariance_type=covariance_type, max_iter=1,
                            random_state=seed).fit(X)
    return dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type=covariance_type)
