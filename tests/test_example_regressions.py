"""The docs' downstream example, EM for a mixture of linear regressions written against
fastem.kernels only: it recovers the lines and its log-likelihood never decreases."""
import importlib.util
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mixture_of_regressions.py"


def load_example():
    spec = importlib.util.spec_from_file_location("mixture_of_regressions", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mixture_of_regressions_recovers_lines_monotonically():
    example = load_example()
    X, y, truth = example.make_data(n=2000, seed=1)
    runs = [example.fit(X, y, 3, seed=seed) for seed in range(3)]
    for *_, history in runs:
        history = np.array(history)
        assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    coef, variance, weights, _ = max(runs, key=lambda run: run[3][-1])
    order = np.argsort(coef[:, 0])
    np.testing.assert_allclose(coef[order], truth[np.argsort(truth[:, 0])], atol=0.05)
    np.testing.assert_allclose(np.sqrt(variance), 0.3, atol=0.03)
    assert abs(weights.sum() - 1.0) < 1e-12
