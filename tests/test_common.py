"""scikit-learn's estimator checks, at several depths and branchings."""

import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, depth=1, random_state=0),
    MixtureOfExpertsRegressor(n_experts=2, depth=2, random_state=0),
    MixtureOfExpertsRegressor(n_experts=3, depth=1, random_state=0),
    MixtureOfExpertsClassifier(n_experts=2, depth=1, random_state=0),
    MixtureOfExpertsClassifier(n_experts=2, depth=2, random_state=0),
    MixtureOfExpertsClassifier(n_experts=3, depth=1, random_state=0),
    # scikit-learn learners as experts, one per weighting rule family.
    MixtureOfExpertsRegressor(
        n_experts=2, expert=DecisionTreeRegressor(max_depth=3), random_state=0
    ),
    MixtureOfExpertsClassifier(n_experts=2, expert=GaussianNB(), random_state=0),
    MixtureOfExpertsClassifier(
        n_experts=2, expert=LogisticRegression(), random_state=0
    ),
]


# A tree alone passes this check, also with fractional weights. As an
# expert its weights are responsibilities that are ~0 outside its region: any
# threshold inside such a gap gives the same improvement up to round-off, and
# weights and repeated rows accumulate the tree's sums in different orders,
# so they break those ties differently (seen: thresholds 0.97 and 0.38 on the
# same feature after one EM iteration, identical fits before it).
TREE_TIES = (
    "tree splits inside a zero-responsibility gap tie up to round-off, which "
    "weights and repeated rows break differently"
)


def expected_failed_checks(estimator):
    expected = {}
    if isinstance(estimator.expert, DecisionTreeRegressor):
        expected["check_sample_weight_equivalence_on_dense_data"] = TREE_TIES
    return expected


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        # The checks fit 10 to 50 samples, fewer than a tree's parameters; the
        # warning that says so has its own tests.
        warnings.filterwarnings("ignore", ".*free parameters", UserWarning)
        # The checks fit random labels and tiny data sets, where EM may need
        # more than max_iter iterations, and learners that do not maximise a
        # weighted likelihood (a tree) need not converge at all;
        # ConvergenceWarning has its own tests.
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
