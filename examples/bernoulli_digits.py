"""A Bernoulli mixture on scikit-learn's bundled handwritten digits, binarised.

Each 8x8 image becomes 64 binary pixels (ink above half the maximum); a mixture of 10
multivariate Bernoulli distributions is fitted by EM without using the labels, and each
component is then named after the digit most of its images show. The printout gives the
clustering's agreement with the true digits (adjusted Rand index), each component's majority
digit and purity, and the components' pixel probabilities as text images.

    python examples/bernoulli_digits.py
"""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from fastem import BernoulliMixture


def binarised_digits():
    digits = load_digits()
    return (digits.data > 8).astype(np.float64), digits.target


def fit(X, seed=0):
    """Ten components; a Beta(2, 2) prior keeps pixel probabilities off exactly 0 and 1."""
    return BernoulliMixture(10, n_init=5, prior=(2.0, 2.0), tol=1e-6, max_iter=500,
                            random_state=seed).fit(X)


def show(probabilities):
    shades = " .:-=+*#%@"
    rows = []
    for r in range(8):
        rows.append("  ".join("".join(shades[min(9, int(p * 10))] for p in image[8 * r:8 * r + 8])
                              for image in probabilities))
    return "\n".join(rows)


def main():
    X, y = binarised_digits()
    model = fit(X)
    labels = model.predict(X)
    print(f"{X.shape[0]} images, {X.shape[1]} binary pixels; converged={model.converged_} "
          f"after {model.n_iter_} iterations; log-posterior per image {model.lower_bound_:.3f}")
    print(f"adjusted Rand index against the true digits: {adjusted_rand_score(y, labels):.3f}")
    order = np.argsort(-model.weights_)
    for k in order:
        members = y[labels == k]
        if members.size:
            digit = np.bincount(members, minlength=10).argmax()
            print(f"component {k}: weight {model.weights_[k]:.3f}, majority digit {digit}, "
                  f"purity {np.mean(members == digit):.2f}")
    print(show(model.probabilities_[order]))


if __name__ == "__main__":
    main()
