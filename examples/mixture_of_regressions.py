"""EM for a mixture of linear regressions, written against ``fastem.kernels`` only.

Model: P(z_i = k) = pi_k and y_i | x_i, z_i = k ~ N(x_i' beta_k, sigma_k^2) (DeSarbo & Cron,
1988). fastem knows nothing about this model; it supplies the two generic steps:

- E-step: log p(y_i, z_i = k | x_i) is computed here in NumPy, then
  ``fastem.kernels.normalize_log_rows`` turns it into responsibilities and per-row log-likelihoods
  (one max-shift log-sum-exp per row, safe where every component underflows).
- M-step: weighted least squares per component. ``fastem.kernels.gaussian_statistics`` of the
  joint rows [x_i, y_i] gives, for each k, sum_i r_ik [x_i, y_i][x_i, y_i]', which holds
  X' R_k X and X' R_k y; beta_k solves the normal equations, sigma_k^2 is the weighted residual.

Run ``python examples/mixture_of_regressions.py`` to fit three lines to synthetic data.
"""
import numpy as np

from fastem import kernels


def log_joint(X, y, coef, variance, weights):
    """log p(y_i, z_i = k | x_i), shape (n, K)."""
    residual = y[:, None] - X @ coef.T
    with np.errstate(divide="ignore"):  # an empty component has weight 0: log 0 = -inf
        log_weights = np.log(weights)
    return log_weights - 0.5 * np.log(2 * np.pi * variance) - 0.5 * residual**2 / variance


def m_step(X, y, resp, min_variance):
    """Weighted least squares per component from fastem's sufficient statistics."""
    p = X.shape[1]
    stats = kernels.gaussian_statistics(np.column_stack([X, y]), resp, "full")  # about 0
    xx, xy = stats.second[:, :p, :p], stats.second[:, :p, p]
    coef = np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(xx, xy)])
    rss = (resp * (y[:, None] - X @ coef.T) ** 2).sum(axis=0)
    nk = stats.nk
    variance = np.maximum(rss / np.maximum(nk, 1e-300), min_variance)
    return coef, variance, nk / nk.sum()


def fit(X, y, n_components, n_iter=500, tol=1e-10, min_variance=1e-6, seed=0):
    """One EM run from random responsibilities; returns (coef, variance, weights, history).

    ``history`` holds the log-likelihood after each E-step; EM never lets it decrease.
    """
    rng = np.random.default_rng(seed)
    resp = rng.dirichlet(np.ones(n_components), size=X.shape[0])
    history = []
    for _ in range(n_iter):
        coef, variance, weights = m_step(X, y, resp, min_variance)
        resp, lse = kernels.normalize_log_rows(log_joint(X, y, coef, variance, weights))
        history.append(float(lse.sum()))
        if len(history) > 1 and history[-1] - history[-2] <= tol * abs(history[-1]):
            break
    return coef, variance, weights, history


def fit_best(X, y, n_components, n_init=5, **kwargs):
    """The run with the highest final log-likelihood among ``n_init`` seeds."""
    runs = [fit(X, y, n_components, seed=seed, **kwargs) for seed in range(n_init)]
    return max(runs, key=lambda run: run[3][-1])


def make_data(n=3000, seed=0, noise=0.3):
    """Points on three lines y = a + b x with Gaussian noise; returns X (with intercept), y, truth."""
    rng = np.random.default_rng(seed)
    truth = np.array([[1.0, 2.0], [-2.0, -1.0], [4.0, 0.5]])  # (intercept, slope) per line
    x = rng.uniform(-3, 3, n)
    X = np.column_stack([np.ones(n), x])
    z = rng.integers(0, len(truth), n)
    y = (X * truth[z]).sum(axis=1) + noise * rng.standard_normal(n)
    return X, y, truth


def main():
    X, y, truth = make_data()
    coef, variance, weights, history = fit_best(X, y, n_components=3)
    order = np.argsort(coef[:, 0])
    print(f"{len(history)} iterations, log-likelihood {history[-1]:.3f}")
    print("fitted (intercept, slope):\n", np.round(coef[order], 3))
    print("true   (intercept, slope):\n", truth[np.argsort(truth[:, 0])])
    print("noise sd:", np.round(np.sqrt(variance[order]), 3), " weights:", np.round(weights[order], 3))


if __name__ == "__main__":
    main()
