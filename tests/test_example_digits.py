"""The docs' real-data example: a Bernoulli mixture on scikit-learn's binarised digits finds
the digits (adjusted Rand index well above chance) and its log-posterior never decreases."""
import importlib.util
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bernoulli_digits.py"


def test_bernoulli_mixture_clusters_the_digits():
    spec = importlib.util.spec_from_file_location("bernoulli_digits", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    X, y = example.binarised_digits()
    model = example.fit(X)
    # chance is 0; KMeans(10) on the same pixels scores 0.53-0.61
    assert adjusted_rand_score(y, model.predict(X)) > 0.45
    assert (np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[:-1])).all()
    assert model.probabilities_.shape == (10, 64)
    assert ((model.probabilities_ > 0) & (model.probabilities_ < 1)).all()  # the Beta prior
