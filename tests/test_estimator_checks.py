"""scikit-learn's own estimator checks, run on fastem's estimators."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastem import GaussianMixture

EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the random initialisation draws from the rows, so repeating rows changes its random "
        "stream; from the same initial parameters, weights equal repetition "
        "(tests/test_weights.py)"
    ),
}


@parametrize_with_checks(
    [GaussianMixture(n_components=2, random_state=0, n_threads=2)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
