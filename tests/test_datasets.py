"""Tests of the data set makers ``make_vowels`` and ``make_expert_clusters``."""

import sys

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hmexperts import MixtureOfExpertsClassifier
from hmexperts.datasets import make_expert_clusters, make_vowels

# Peterson & Barney (1952), their averages, typed again here: F0, F1, F2, F3 (Hz).
TABLE = {
    "men": {"IY": (136, 270, 2290, 3010), "IH": (135, 390, 1990, 2550)},
    "women": {"AA": (212, 850, 1220, 2810), "AH": (221, 760, 1400, 2780)},
    "children": {"UW": (274, 430, 1170, 3260), "ER": (261, 560, 1820, 2160)},
}
ALL_VOWELS = ("IY", "IH", "EH", "AE", "AA", "AO", "UH", "UW", "AH", "ER")
FORMANTS = ("F0", "F1", "F2", "F3")


# -- make_vowels --------------------------------------------------------------


def test_vowels_bunch():
    vowels = make_vowels(random_state=0)
    assert vowels.data.shape == (76 * 2 * 4, 2)
    assert vowels.data.dtype == np.float64
    assert np.all(vowels.data > 0)
    assert vowels.target.shape == vowels.speaker.shape == vowels.group.shape
    assert vowels.target.dtype.kind == "i"
    assert vowels.target.tolist()[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert vowels.target_names.tolist() == ["IY", "IH", "AA", "AH"]
    assert vowels.feature_names == ["F1", "F2"]
    assert vowels.frame is None
    assert "Peterson & Barney" in vowels.DESCR
    assert "33 men, 28 women, 15 children" in vowels.DESCR


def test_vowels_reproducible():
    first = make_vowels(random_state=3)
    second = make_vowels(random_state=np.random.RandomState(3))
    other = make_vowels(random_state=4)
    np.testing.assert_array_equal(first.data, second.data)
    assert not np.allclose(first.data, other.data)


@pytest.mark.parametrize(
    "n_speakers, groups, expected",
    [
        (76, None, {"men": 33, "women": 28, "children": 15}),
        (152, None, {"men": 66, "women": 56, "children": 30}),
        (3, None, {"men": 1, "women": 1, "children": 1}),
        (10, ("children", "men"), {"children": 3, "men": 7}),
        ({"women": 2, "children": 4}, None, {"women": 2, "children": 4}),
        (
            {"women": 2, "children": 4},
            ("children", "Women"),
            {"women": 2, "children": 4},
        ),
    ],
)
def test_vowels_speakers_per_group(n_speakers, groups, expected):
    vowels = make_vowels(n_speakers, groups=groups, random_state=0)
    counts = {
        group: len(np.unique(vowels.speaker[vowels.group == group]))
        for group in np.unique(vowels.group)
    }
    assert counts == expected
    # speakers are numbered 0, 1, ... group by group, in the order given
    speakers = np.unique(vowels.speaker)
    np.testing.assert_array_equal(speakers, np.arange(sum(expected.values())))
    assert list(dict.fromkeys(vowels.group.tolist())) == list(expected)


def test_vowels_tokens_per_speaker():
    vowels = make_vowels(9, vowels=("EH", "AE", "AO"), n_repetitions=3, random_state=0)
    assert vowels.data.shape == (9 * 3 * 3, 2)
    for speaker in np.unique(vowels.speaker):
        rows = vowels.speaker == speaker
        assert len(np.unique(vowels.group[rows])) == 1
        np.testing.assert_array_equal(np.bincount(vowels.target[rows]), [3, 3, 3])


def test_vowels_means_approach_table():
    vowels = make_vowels(760, vowels=ALL_VOWELS, formants=FORMANTS, random_state=0)
    for group, table in TABLE.items():
        for name, expected in table.items():
            rows = (vowels.group == group) & (vowels.target == ALL_VOWELS.index(name))
            mean = vowels.data[rows].mean(axis=0)
            np.testing.assert_allclose(mean, expected, rtol=0.03)
    men_iy = (vowels.group == "men") & (vowels.target == 0)
    assert abs(vowels.data[men_iy, 1].mean() / 270 - 1) < 0.02


def test_vowels_spreads():
    vowels = make_vowels(
        1000,
        groups=["men"],
        vowels=["IY"],
        formants=FORMANTS,
        n_repetitions=4,
        speaker_spread=(0.1, 0.05, 0.05, 0.05),
        token_spread=(0.04, 0.08, 0.05, 0.04),
        random_state=0,
    )
    log_freq = np.log(vowels.data).reshape(1000, 4, 4)
    within = log_freq.std(axis=1, ddof=1).mean(axis=0)
    between = log_freq.mean(axis=1).std(axis=0)
    np.testing.assert_allclose(within, [0.04, 0.08, 0.05, 0.04], rtol=0.1)
    expected = np.sqrt(np.array([0.1, 0.05, 0.05, 0.05]) ** 2 + within**2 / 4)
    np.testing.assert_allclose(between, expected, rtol=0.1)
    # F1-F3 share the vocal-tract factor; F0 has its own
    speaker_mean = log_freq.mean(axis=1)
    corr = np.corrcoef(speaker_mean.T)
    assert corr[1, 3] > 0.5 and corr[2, 3] > 0.5
    assert abs(corr[0, 1]) < 0.1


def test_vowels_without_spread_give_the_table():
    vowels = make_vowels(
        {"children": 2},
        vowels=["ER", "UW"],
        formants=FORMANTS,
        speaker_spread=0,
        token_spread=0.0,
        random_state=0,
    )
    np.testing.assert_allclose(
        vowels.data[:2], [TABLE["children"]["ER"], TABLE["children"]["UW"]]
    )


def test_vowels_children_higher_than_men():
    vowels = make_vowels(300, vowels=ALL_VOWELS, formants=FORMANTS, random_state=0)
    for code in range(len(ALL_VOWELS)):
        men = vowels.data[(vowels.group == "men") & (vowels.target == code)]
        children = vowels.data[(vowels.group == "children") & (vowels.target == code)]
        assert np.all(children.mean(axis=0) > men.mean(axis=0))


def test_vowels_formants_select_columns_of_the_same_draw():
    full = make_vowels(formants=FORMANTS, random_state=0)
    part = make_vowels(formants=("f2", "F0"), random_state=0)
    assert part.feature_names == ["F2", "F0"]
    np.testing.assert_array_equal(part.data, full.data[:, [2, 0]])


def test_vowels_ipa_and_case_aliases():
    default = make_vowels(random_state=0)
    for names in (["i", "ɪ", "a", "ʌ"], ["iy", "Ih", "ɑ", "ah"]):
        aliased = make_vowels(vowels=names, random_state=0)
        np.testing.assert_array_equal(aliased.data, default.data)
        assert aliased.target_names.tolist() == ["IY", "IH", "AA", "AH"]
    assert make_vowels(vowels="ɚ", random_state=0).target_names.tolist() == ["ER"]


def test_vowels_return_X_y():
    bunch = make_vowels(random_state=0)
    X, y = make_vowels(random_state=0, return_X_y=True)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


def test_vowels_as_frame():
    pd = pytest.importorskip("pandas")
    bunch = make_vowels(random_state=0)
    framed = make_vowels(random_state=0, as_frame=True)
    assert isinstance(framed.data, pd.DataFrame)
    assert list(framed.data.columns) == ["F1", "F2"]
    assert isinstance(framed.target, pd.Series) and framed.target.name == "target"
    assert list(framed.frame.columns) == ["F1", "F2", "speaker", "group", "target"]
    np.testing.assert_array_equal(framed.data.to_numpy(), bunch.data)
    np.testing.assert_array_equal(framed.target.to_numpy(), bunch.target)
    np.testing.assert_array_equal(framed.frame["speaker"].to_numpy(), bunch.speaker)
    assert framed.frame["group"].tolist() == bunch.group.tolist()
    X, y = make_vowels(random_state=0, as_frame=True, return_X_y=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)


def test_vowels_as_frame_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="as_frame=True requires pandas"):
        make_vowels(random_state=0, as_frame=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vowels": ["IY", "XX"]}, r"Unknown vowel 'XX'.*'IY'.*'ɪ'"),
        ({"vowels": ["IY", "i"]}, "names the vowel 'IY' twice"),
        ({"vowels": []}, "vowels is empty"),
        ({"groups": ["men", "boys"]}, "Unknown group 'boys' in groups"),
        ({"groups": ["men", "MEN"]}, "names the group 'men' twice"),
        ({"formants": ["F1", "F4"]}, "Unknown formant 'F4' in formants"),
        ({"formants": ["F1", "f1"]}, "names the formant 'F1' twice"),
        ({"n_speakers": 0}, "n_speakers == 0, must be >= 1"),
        ({"n_speakers": 2}, "n_speakers=2 is too small .* 3 groups"),
        ({"n_speakers": {"men": 3, "women": 0}}, r"n_speakers\['women'\] == 0"),
        ({"n_speakers": {"men": 3, "girls": 2}}, "Unknown group 'girls' in n_speakers"),
        ({"n_speakers": {}}, "n_speakers is empty"),
        (
            {"n_speakers": {"men": 3}, "groups": ["women"]},
            "differ from the groups",
        ),
        ({"n_repetitions": 0}, "n_repetitions == 0, must be >= 1"),
        ({"speaker_spread": -0.1}, "speaker_spread == -0.1, must be >= 0"),
        ({"token_spread": (0.1, 0.1)}, "token_spread must be a float or a sequence"),
        ({"token_spread": (0.1, 0.1, -0.1, 0.1)}, "must be finite and >= 0"),
        ({"return_X_y": "yes"}, "return_X_y='yes'; expected True or False"),
    ],
)
def test_vowels_invalid_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_vowels(random_state=0, **kwargs)


def test_vowels_non_integer_count():
    with pytest.raises(TypeError, match="n_speakers"):
        make_vowels(10.5)


def _bayes_predict(X, vowels):
    """The Bayes classifier of the documented model, on F1 and F2."""
    tract = np.array([0.05, 0.05])
    token = np.array([0.08, 0.05])
    cov = np.outer(tract, tract) + np.diag(token**2)
    means = {
        "men": {"IY": (270, 2290), "IH": (390, 1990), "AA": (730, 1090)},
        "women": {"IY": (310, 2790), "IH": (430, 2480), "AA": (850, 1220)},
        "children": {"IY": (370, 3200), "IH": (530, 2730), "AA": (1030, 1370)},
    }
    means["men"]["AH"] = (640, 1190)
    means["women"]["AH"] = (760, 1400)
    means["children"]["AH"] = (850, 1590)
    prior = {"men": 33 / 76, "women": 28 / 76, "children": 15 / 76}
    log_x = np.log(X)
    log_density = [
        logsumexp(
            [
                np.log(prior[group])
                + multivariate_normal(
                    np.log(means[group][vowel]) - (tract**2 + token**2) / 2, cov
                ).logpdf(log_x)
                for group in prior
            ],
            axis=0,
        )
        for vowel in vowels
    ]
    return np.argmax(log_density, axis=0)


def test_vowels_default_task_is_nearly_linear():
    """Logistic regression is within a percent of the Bayes classifier.

    This is why a mixture of experts cannot clearly beat it on the default
    vowels, and checks the documented model against the generator.
    """
    train = make_vowels(760, random_state=0)
    test = make_vowels(760, random_state=1)
    bayes = np.mean(_bayes_predict(test.data, test.target_names) == test.target)
    linear = make_pipeline(StandardScaler(), LogisticRegression())
    linear_accuracy = linear.fit(train.data, train.target).score(test.data, test.target)
    assert 0.93 < bayes < 0.97
    assert bayes - 0.01 < linear_accuracy <= bayes + 0.005


def test_vowels_mixture_of_experts_on_held_out_speakers():
    """On the default data, held-out speakers: the 4-expert mixture matches
    logistic regression (it cannot clearly beat it, see above) and, as in
    Jacobs et al. (1991), no expert serves both a front and a back vowel."""
    vowels = make_vowels(random_state=0)
    X, y = vowels.data, vowels.target
    split = GroupShuffleSplit(n_splits=1, test_size=0.3, random_state=0)
    train, test = next(split.split(X, y, vowels.speaker))
    moe = MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0)
    moe.fit(X[train], y[train])
    linear = make_pipeline(StandardScaler(), LogisticRegression())
    linear.fit(X[train], y[train])
    moe_accuracy = moe.score(X[test], y[test])
    linear_accuracy = linear.score(X[test], y[test])
    assert moe_accuracy > 0.9 and linear_accuracy > 0.9
    assert moe_accuracy >= linear_accuracy - 0.02

    leaf = moe.apply(X)
    main_leaf = [np.bincount(leaf[y == code]).argmax() for code in range(4)]
    assert not set(main_leaf[:2]) & set(main_leaf[2:])  # front: IY, IH; back: AA, AH


# -- make_expert_clusters ------------------------------------------------------


def _centers(n_clusters, cluster_sep):
    angle = 2 * np.pi * np.arange(n_clusters) / n_clusters
    radius = cluster_sep / (2 * np.sin(np.pi / n_clusters))
    return radius * np.column_stack([np.cos(angle), np.sin(angle)]), angle


def test_clusters_shapes_and_balance():
    X, y, cluster = make_expert_clusters(1003, random_state=0)
    assert X.shape == (1003, 2) and X.dtype == np.float64
    assert y.shape == cluster.shape == (1003,)
    assert set(y.tolist()) == {0, 1}
    np.testing.assert_array_equal(np.bincount(cluster), [251, 251, 251, 250])
    for k in range(4):
        assert abs(np.sum(y[cluster == k] == 1) - np.sum(y[cluster == k] == 0)) <= 1


def test_clusters_reproducible_and_shuffled():
    first = make_expert_clusters(random_state=0)
    second = make_expert_clusters(random_state=0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.any(np.diff(first[2]) < 0)
    _, _, ordered = make_expert_clusters(random_state=0, shuffle=False)
    assert np.all(np.diff(ordered) >= 0)


def test_clusters_match_generating_clusters():
    X, y, cluster = make_expert_clusters(
        2000, n_clusters=5, cluster_sep=10.0, class_sep=3.0, random_state=0
    )
    centers, angle = _centers(5, 10.0)
    tangent = np.column_stack([-np.sin(angle), np.cos(angle)])
    for k in range(5):
        rows = cluster == k
        np.testing.assert_allclose(X[rows].mean(axis=0), centers[k], atol=0.3)
        shift = X[rows & (y == 1)].mean(axis=0) - X[rows & (y == 0)].mean(axis=0)
        np.testing.assert_allclose(shift, 3.0 * tangent[k], atol=0.3)
        # one linear expert per cluster separates its classes
        expert = LogisticRegression().fit(X[rows], y[rows])
        assert expert.score(X[rows], y[rows]) > 0.9
    neighbours = np.linalg.norm(np.diff(centers, axis=0), axis=1)
    np.testing.assert_allclose(neighbours, 10.0)
    nearest = np.argmin(np.linalg.norm(X[:, None] - centers[None], axis=2), axis=1)
    assert np.mean(nearest == cluster) > 0.99


def test_clusters_extra_features_are_noise():
    X, _, _ = make_expert_clusters(2000, 5, noise=0.5, random_state=0)
    np.testing.assert_allclose(X[:, 2:].mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose(X[:, 2:].std(axis=0), 0.5, rtol=0.1)


def test_clusters_defeat_a_linear_model_not_a_mixture():
    X, y, _ = make_expert_clusters(random_state=0)
    X_test, y_test, _ = make_expert_clusters(random_state=1)
    linear = LogisticRegression().fit(X, y)
    moe = MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0).fit(X, y)
    assert linear.score(X_test, y_test) < 0.75
    assert moe.score(X_test, y_test) > 0.9


def test_clusters_single_cluster_is_linear():
    X, y, cluster = make_expert_clusters(500, n_clusters=1, random_state=0)
    assert np.all(cluster == 0)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=0.2)
    assert LogisticRegression().fit(X, y).score(X, y) > 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_clusters": 0}, "n_clusters == 0, must be >= 1"),
        ({"n_samples": 3}, "n_samples=3 is smaller than n_clusters=4"),
        ({"n_features": 1}, "n_features == 1, must be >= 2"),
        ({"cluster_sep": -1.0}, "cluster_sep == -1.0, must be >= 0"),
        ({"class_sep": -1.0}, "class_sep == -1.0, must be >= 0"),
        ({"noise": -0.5}, "noise == -0.5, must be >= 0"),
    ],
)
def test_clusters_invalid_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_expert_clusters(random_state=0, **kwargs)
