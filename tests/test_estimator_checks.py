"""scikit-learn's own estimator checks, run on fastem's estimators."""
import re
from pathlib import Path

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastem import ExponentialMixture, GaussianMixture

EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the random initialisation draws from the rows, so repeating rows changes its random "
        "stream; from the same initial parameters, weights equal repetition "
        "(tests/test_streaming.py::test_integer_weights_equal_repeated_rows)"
    ),
}


# The other exponential-family mixtures need binary, count, code or strictly positive data,
# which scikit-learn's checks do not generate; ExponentialMixture takes their non-negative data.
@parametrize_with_checks(
    [GaussianMixture(n_components=2, random_state=0, n_threads=2),
     ExponentialMixture(n_components=2, random_state=0, n_threads=2)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_expected_failures_cite_existing_tests():
    """Each expected failure names the test of ours that covers the property instead."""
    root = Path(__file__).resolve().parent.parent
    for reason in EXPECTED_FAILED.values():
        path, name = re.search(r"\((tests/\S+)::(\w+)\)", reason).groups()
        assert f"def {name}(" in (root / path).read_text(), reason
