"""Agreement of every fastem.hmm class with hmmlearn 0.3.3 from the same initial parameters.

For each class (and covariance type) both libraries fit the same multi-sequence data for
``--iters`` EM iterations (``init_params=""``, ``tol=-inf``) from the same parameters; the table
gives the largest relative difference of the log-likelihood history, the fitted parameters,
``score`` and ``predict_proba`` (entries above 1e-3 of their largest), and whether the Viterbi
paths are equal. GMMHMM runs with non-default priors (means, weights, covariance priors).

    python benchmarks/hmm_agreement.py [--iters 20]
"""
import argparse
import logging

import numpy as np


def relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.abs(a) > 1e-3 * np.abs(a).max()  # relative error of the entries that matter
    return float((np.abs(a - b)[keep] / np.abs(a)[keep]).max())


def fitted_arrays(model, attributes):
    """The fitted counterparts of the attributes set; a GaussianHMM's covariances as stored
    (hmmlearn 0.3.3 keeps spherical variances tiled over features: one column of them)."""
    for name in attributes:
        if name == "covars_" and hasattr(model, "covariance_type") \
                and not hasattr(model, "n_mix"):
            c = np.asarray(model._covars_)
            yield c[:, 0] if model.covariance_type == "spherical" and c.ndim == 2 else c
        else:
            yield getattr(model, name)


def cases(rng):
    """(name, constructor keywords, attributes to set, X, lengths) per class."""
    k, m, d = 3, 2, 3
    start, trans = np.array([0.5, 0.3, 0.2]), np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1],
                                                        [0.05, 0.15, 0.8]])
    z = np.repeat(rng.integers(0, k, 60), 20)
    centres = rng.normal(0, 3, (k, d))
    X = centres[z] + rng.normal(size=(z.size, d)) * (1 + z[:, None])
    lengths = [300, 1, 499, 400]
    chain = dict(startprob_=start, transmat_=trans)
    a = rng.normal(size=(d, d))
    base = a @ a.T / d + np.eye(d)
    scales = rng.uniform(0.5, 2.0, (k, m))
    gaussian = {"spherical": scales[:, 0], "diag": scales[:, :1] * np.ones((k, d)),
                "full": scales[:, 0, None, None] * base, "tied": base}
    for t, covars in gaussian.items():
        yield (f"GaussianHMM {t}", "GaussianHMM", dict(covariance_type=t),
               dict(chain, means_=X[[0, 400, 900]], covars_=covars), X, lengths)
    mixture = {"spherical": scales, "diag": scales[..., None] * np.ones(d),
               "full": scales[..., None, None] * base, "tied": scales[:, :1, None] * base}
    for t, covars in mixture.items():
        priors = dict(means_prior=0.3, means_weight=0.5, weights_prior=1.5)
        if t in ("full", "tied"):
            priors.update(covars_prior=0.2 * np.eye(d), covars_weight=5.0)
        else:
            priors.update(covars_prior=0.2, covars_weight=0.4)
        yield (f"GMMHMM {t}", "GMMHMM", dict(n_mix=m, covariance_type=t, **priors),
               dict(chain, weights_=rng.dirichlet(np.ones(m), size=k),
                    means_=X[rng.choice(len(X), k * m, replace=False)].reshape(k, m, d),
                    covars_=covars), X, lengths)
    codes = np.where(z == 0, rng.integers(0, 4, z.size), rng.integers(0, 2, z.size))[:, None]
    yield ("CategoricalHMM", "CategoricalHMM", {},
           dict(chain, emissionprob_=rng.dirichlet(np.ones(4), size=k)), codes, lengths)
    counts = rng.poisson(2.0 + 3 * z[:, None], (z.size, 2))
    yield ("PoissonHMM", "PoissonHMM", {},
           dict(chain, lambdas_=np.array([[1.0, 2.0], [5.0, 4.0], [10.0, 12.0]])), counts,
           lengths)
    probabilities = rng.dirichlet(np.ones(5), size=k)
    trials = np.vstack([rng.multinomial(8, probabilities[s]) for s in z])
    yield ("MultinomialHMM", "MultinomialHMM", dict(n_trials=8),
           dict(chain, emissionprob_=rng.dirichlet(np.ones(5), size=k)), trials, lengths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    from hmmlearn import hmm as reference

    from fastem import hmm

    print(f"{'class':<22}{'history':>10}{'params':>10}{'score':>10}{'posterior':>11}"
          f"{'viterbi':>9}")
    for name, cls, kwargs, attributes, X, lengths in cases(np.random.default_rng(0)):
        fitted = []
        for module in (reference, hmm):
            model = getattr(module, cls)(3, init_params="", n_iter=args.iters, tol=-np.inf,
                                         **kwargs)
            for attribute, value in attributes.items():
                setattr(model, attribute, value)
            fitted.append(model.fit(X, lengths))
        ref, ours = fitted
        params = max(relative(a, b) for a, b in zip(fitted_arrays(ref, attributes),
                                                    fitted_arrays(ours, attributes)))
        print(f"{name:<22}{relative(ref.monitor_.history, ours.monitor_.history):>10.1e}"
              f"{params:>10.1e}{relative(ref.score(X, lengths), ours.score(X, lengths)):>10.1e}"
              f"{relative(ref.predict_proba(X, lengths), ours.predict_proba(X, lengths)):>11.1e}"
              f"{str(np.array_equal(ref.predict(X, lengths), ours.predict(X, lengths))):>9}")


if __name__ == "__main__":
    main()
