"""scikit-learn's estimator checks, at several depths and branchings."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, depth=1, random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0),
    MixtureOfExpertsRegressor(n_experts=3, depth=1, random_state=0),
    MixtureOfExpertsClassifier(n_experts=2, depth=1, random_state=0),
    MixtureOfExpertsClassifier(n_experts=2, depth=2, random_state=0),
    MixtureOfExpertsClassifier(n_experts=3, depth=1, random_state=0),
]


# These checks call ``score_samples(X)`` without a target. A mixture of
# experts models p(y | x): its per-sample log-likelihood needs y, so our
# ``score_samples(X, y)`` cannot take X alone. Every other method passes them.
SCORE_SAMPLES_NEEDS_Y = (
    "score_samples(X, y) is the conditional log-likelihood log p(y | x) and needs y"
)


def expected_failed_checks(estimator):
    return {
        "check_methods_sample_order_invariance": SCORE_SAMPLES_NEEDS_Y,
        "check_methods_subset_invariance": SCORE_SAMPLES_NEEDS_Y,
        "check_array_api_input": SCORE_SAMPLES_NEEDS_Y,
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
