"""Data sets for teaching and testing mixtures of experts.

``make_moe`` samples a tree of softmax gates and linear experts, draws the
inputs from a standard normal, routes every sample to a leaf by the leaf
priors and draws its target from that leaf's expert. The true parameters come
back with the data, together with an estimator that carries them, so that a
fit can be compared with the truth on every scale (coefficients,
log-likelihood, predictions). ``make_vowels`` draws synthetic vowel formants
(Hz) of men, women and children around the mean formants published by
Peterson & Barney (1952), the task on which Jacobs, Jordan, Nowlan & Hinton
(1991) introduced the mixture of experts; a speaker id per row allows splits
by speaker. ``load_peterson_barney`` loads Peterson & Barney's measurements
themselves (1,520 tokens, shipped with the package), with the same names.
``make_expert_clusters`` draws the clustered classification task
of Chen et al. (2022): well-separated clusters, each split into two classes
along its own direction, so that one linear expert per cluster classifies
the data and no single linear classifier does.
"""

import csv
import io
from importlib import resources
from numbers import Real

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._classification import MixtureOfExpertsClassifier
from ._regression import MixtureOfExpertsRegressor
from ._tree import Tree
from ._validation import check_int, check_real

__all__ = ["load_peterson_barney", "make_expert_clusters", "make_moe", "make_vowels"]


def make_moe(
    n_samples=1000,
    n_features=2,
    *,
    n_experts=2,
    depth=1,
    task="regression",
    n_classes=2,
    noise=0.1,
    gate_scale=4.0,
    coef_scale=1.0,
    tree=None,
    random_state=None,
):
    """Draw data from a random mixture of experts with known parameters.

    Inputs are standard normal. Every gate of the tree (``depth`` levels,
    ``n_experts`` children each) has weights along random unit directions
    scaled by ``gate_scale`` (larger: sharper, more separable regions) and
    zero intercepts. Experts are linear-Gaussian (regression) with
    coefficients and intercepts of standard deviation ``coef_scale`` and
    noise standard deviation ``noise``, or multinomial-logistic
    (classification) with weights of standard deviation ``coef_scale``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=2
        Number of input features.
    n_experts : int, default=2
        Children of every gate.
    depth : int, default=1
        Levels of gates; the tree has ``n_experts ** depth`` leaves.
    task : {"regression", "classification"}, default="regression"
        Kind of experts and target.
    n_classes : int, default=2
        Number of classes (classification only).
    noise : float, default=0.1
        Standard deviation of every expert's Gaussian noise (regression only).
    gate_scale : float, default=4.0
        Norm of every gate's weight vectors.
    coef_scale : float, default=1.0
        Standard deviation of the experts' coefficients.
    tree : nested list or None, default=None
        A tree of another shape than the balanced one of ``n_experts`` and
        ``depth`` (which it replaces), as the estimators' ``tree``
        parameter: a list is a gate over its items, any other item a leaf
        (``[[0, 1], 2]``). Its gates are drawn as the balanced tree's.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets: floats (regression) or integers in ``[0, n_classes)``.
    truth : :class:`~sklearn.utils.Bunch`
        ``gate_coef``, ``gate_intercept`` (lists over levels, shaped like a
        fitted estimator's ``gate_coef_`` and ``gate_intercept_``),
        ``expert_coef``, ``expert_intercept``, ``expert_variance``
        (regression), ``leaf`` (the leaf each sample was drawn from) and
        ``model``: a fitted :class:`~hmexperts.MixtureOfExpertsRegressor` or
        :class:`~hmexperts.MixtureOfExpertsClassifier` holding the true
        parameters, whose ``log_likelihood`` is the true log-likelihood.

    Examples
    --------
    >>> from hmexperts.datasets import make_moe
    >>> X, y, truth = make_moe(n_samples=500, n_experts=2, depth=2, random_state=0)
    >>> X.shape, y.shape, truth.model.n_leaves_
    ((500, 2), (500,), 4)
    >>> truth.gate_coef[1].shape  # level 1: two gates, two features, two children
    (2, 2, 2)
    """
    check_int(n_samples, "n_samples", min_val=1)
    check_int(n_features, "n_features", min_val=1)
    check_int(n_experts, "n_experts", min_val=1)
    check_int(depth, "depth", min_val=1)
    check_real(noise, "noise", min_val=0, include_boundaries="neither")
    check_real(gate_scale, "gate_scale", min_val=0)
    check_real(coef_scale, "coef_scale", min_val=0)
    if task not in ("regression", "classification"):
        raise ValueError(f"task={task!r}; expected 'regression' or 'classification'.")
    if task == "classification":
        check_int(n_classes, "n_classes", min_val=2)
    rng = check_random_state(random_state)
    shape = Tree.balanced(n_experts, depth) if tree is None else Tree.from_nested(tree)
    n_leaves = shape.n_leaves
    gate_coef, gate_intercept = [], []
    for batch in shape.batches:
        n_gates, k = len(batch.nodes), batch.n_children
        directions = rng.normal(size=(n_gates, n_features, k))
        directions -= directions.mean(axis=2, keepdims=True)
        norms = np.linalg.norm(directions, axis=1, keepdims=True)
        gate_coef.append(gate_scale * directions / np.maximum(norms, 1e-12))
        gate_intercept.append(np.zeros((n_gates, k)))
    shaped = {} if tree is None else {"tree": tree}
    if task == "regression":
        coef = coef_scale * rng.normal(size=(n_leaves, n_features + 1))
        model = MixtureOfExpertsRegressor.from_parameters(
            gate_coef,
            gate_intercept,
            coef[:, :-1],
            coef[:, -1],
            expert_variance=np.full(n_leaves, float(noise) ** 2),
            **shaped,
        )
    else:
        coef = coef_scale * rng.normal(size=(n_leaves, n_features + 1, n_classes))
        model = MixtureOfExpertsClassifier.from_parameters(
            gate_coef, gate_intercept, coef[:, :-1], coef[:, -1], **shaped
        )

    X = rng.normal(size=(n_samples, n_features))
    y, leaf = model.sample(X, random_state=rng, return_leaves=True)

    truth = Bunch(
        gate_coef=model.gate_coef_,
        gate_intercept=model.gate_intercept_,
        expert_coef=model.expert_coef_,
        expert_intercept=model.expert_intercept_,
        leaf=leaf,
        model=model,
    )
    if task == "regression":
        truth.expert_variance = model.expert_variance_
    return X, y, truth


# Peterson & Barney (1952), their averages: mean F0, F1, F2, F3 (Hz) of every
# vowel for the 33 men, 28 women and 15 children; rows in the order of _VOWELS.
_VOWELS = ("IY", "IH", "EH", "AE", "AA", "AO", "UH", "UW", "AH", "ER")
_IPA = {
    "i": "IY",
    "ɪ": "IH",
    "ɛ": "EH",
    "æ": "AE",
    "ɑ": "AA",
    "a": "AA",
    "ɔ": "AO",
    "ʊ": "UH",
    "u": "UW",
    "ʌ": "AH",
    "ɝ": "ER",
    "ɚ": "ER",
}
_FORMANTS = ("F0", "F1", "F2", "F3")
_GROUP_SPEAKERS = {"men": 33, "women": 28, "children": 15}
_MEAN_FORMANTS = {
    "men": [
        [136, 270, 2290, 3010],
        [135, 390, 1990, 2550],
        [130, 530, 1840, 2480],
        [127, 660, 1720, 2410],
        [124, 730, 1090, 2440],
        [129, 570, 840, 2410],
        [137, 440, 1020, 2240],
        [141, 300, 870, 2240],
        [130, 640, 1190, 2390],
        [133, 490, 1350, 1690],
    ],
    "women": [
        [235, 310, 2790, 3310],
        [232, 430, 2480, 3070],
        [223, 610, 2330, 2990],
        [210, 860, 2050, 2850],
        [212, 850, 1220, 2810],
        [216, 590, 920, 2710],
        [232, 470, 1160, 2680],
        [231, 370, 950, 2670],
        [221, 760, 1400, 2780],
        [218, 500, 1640, 1960],
    ],
    "children": [
        [272, 370, 3200, 3730],
        [269, 530, 2730, 3600],
        [260, 690, 2610, 3570],
        [251, 1010, 2320, 3320],
        [256, 1030, 1370, 3170],
        [263, 680, 1060, 3180],
        [276, 560, 1410, 3310],
        [274, 430, 1170, 3260],
        [261, 850, 1590, 3360],
        [261, 560, 1820, 2160],
    ],
}


def _vowel_name(vowel):
    """The ARPAbet name of ``vowel``, given in ARPAbet (any case) or IPA."""
    if isinstance(vowel, str):
        if vowel in _IPA:
            return _IPA[vowel]
        if vowel.upper() in _VOWELS:
            return vowel.upper()
    raise ValueError(
        f"Unknown vowel {vowel!r}; expected an ARPAbet name among {list(_VOWELS)} "
        f"or an IPA symbol among {list(_IPA)}."
    )


def _names(values, name, valid, item, *, case=str.lower):
    """Validate a non-empty sequence (or one string) of distinct names."""
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError(f"{name} is empty; give at least one of {list(valid)}.")
    out = []
    for value in values:
        key = case(value) if isinstance(value, str) else value
        if key not in valid:
            raise ValueError(
                f"Unknown {item} {value!r} in {name}; expected some of {list(valid)}."
            )
        if key in out:
            raise ValueError(f"{name} names the {item} {key!r} twice; give it once.")
        out.append(key)
    return out


def _spread(spread, name):
    """A non-negative log-scale standard deviation for each of F0..F3."""
    if isinstance(spread, Real):
        check_real(spread, name, min_val=0)
        spread = np.full(len(_FORMANTS), float(spread))
    spread = np.asarray(spread, dtype=float)
    if spread.shape != (len(_FORMANTS),):
        raise ValueError(
            f"{name} must be a float or a sequence of {len(_FORMANTS)} floats, one "
            f"per {_FORMANTS}; got shape {spread.shape}."
        )
    if not np.all(np.isfinite(spread)) or np.any(spread < 0):
        raise ValueError(f"{name}={spread.tolist()} must be finite and >= 0.")
    return spread


def _speakers_per_group(n_speakers, groups):
    """The groups and their speaker counts, in Peterson & Barney's proportions
    (by largest remainders, at least one each) unless given."""
    if isinstance(n_speakers, dict):
        given = _names(list(n_speakers), "n_speakers", _GROUP_SPEAKERS, "group")
        if groups is not None and set(
            _names(groups, "groups", _GROUP_SPEAKERS, "group")
        ) != set(given):
            raise ValueError(
                f"groups={groups!r} differ from the groups {given} of n_speakers; "
                "give the groups through one of them."
            )
        counts = []
        for group, count in zip(given, n_speakers.values(), strict=True):
            check_int(count, f"n_speakers[{group!r}]", min_val=1)
            counts.append(int(count))
        return given, counts
    if groups is None:
        groups = tuple(_GROUP_SPEAKERS)
    groups = _names(groups, "groups", _GROUP_SPEAKERS, "group")
    check_int(n_speakers, "n_speakers", min_val=1)
    if n_speakers < len(groups):
        raise ValueError(
            f"n_speakers={n_speakers} is too small to give each of the {len(groups)} "
            f"groups {groups} a speaker; use n_speakers >= {len(groups)} or fewer "
            "groups."
        )
    weight = np.array([_GROUP_SPEAKERS[group] for group in groups], dtype=float)
    share = n_speakers * weight / weight.sum()
    counts = np.floor(share).astype(int)
    left = n_speakers - counts.sum()
    counts[np.argsort(counts - share, kind="stable")[:left]] += 1
    while counts.min() == 0:
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return groups, counts.tolist()


def make_vowels(
    n_speakers=76,
    *,
    vowels=("IY", "IH", "AA", "AH"),
    groups=None,
    formants=("F1", "F2"),
    n_repetitions=2,
    speaker_spread=(0.10, 0.05, 0.05, 0.05),
    token_spread=(0.04, 0.08, 0.05, 0.04),
    random_state=None,
    return_X_y=False,
    as_frame=False,
):
    """Draw synthetic vowel formants of men, women and children.

    Jacobs, Jordan, Nowlan & Hinton (1991) trained their mixture of experts
    to tell the vowels [i], [ɪ], [a] and [ʌ] apart from the first two
    formants, measured by Peterson & Barney (1952) on 76 speakers (33 men,
    28 women, 15 children) who said each vowel twice. This function draws
    data of that shape around Peterson & Barney's published mean
    frequencies of every group: F0 and the formants F1, F2 and F3 of ten
    vowels of American English. It does not hold their measurements;
    :func:`load_peterson_barney` loads those, with the same vowel, formant
    and group names and the same order of rows, so that one can stand in
    for the other.

    Every speaker belongs to a group and has a scale factor on F1, F2 and F3
    together (the length of the vocal tract scales all formants alike), and
    an independent one on F0; every token multiplies each frequency by its
    own factor. All factors are log-normal, with the log-scale standard
    deviations ``speaker_spread`` and ``token_spread``, and the values are
    corrected by ``exp(-sigma**2 / 2)`` so that their expected mean in every
    group is the published one. The spreads are approximate values, chosen
    to give the overlap of the vowels seen in Peterson & Barney's scatter
    plots; the resulting standard deviations within a group (about 11% of
    the mean for F0, 9% for F1, 7% for F2, 6% for F3) are of the order of
    those Hillenbrand, Getty, Clark & Wheeler (1995) report for their
    speakers. They are not fitted to any table.

    Under this model the log-formants of every vowel are a mixture of the
    groups' Gaussians with a shared covariance, and for the four default
    vowels the best boundaries are almost straight: on F1 and F2, logistic
    regression comes within about 0.1% of the Bayes accuracy (about 95%,
    measured on 4,560 simulated speakers). A mixture of experts gives the
    front vowels [i], [ɪ] and the back vowels [a], [ʌ] to different experts,
    the division of labour Jacobs et al. describe, but it cannot be clearly
    more accurate than logistic regression here. With all ten
    vowels, which ring the vowel space, logistic regression falls about 1.5%
    short of the Bayes accuracy (about 84%).

    Parameters
    ----------
    n_speakers : int or dict, default=76
        Number of speakers, split over ``groups`` in Peterson & Barney's
        proportions 33:28:15 (each group at least one speaker; 76 gives
        exactly theirs), or a dict ``{group: count}``.
    vowels : sequence of str, default=("IY", "IH", "AA", "AH")
        The classes, in the order of the target's codes: ARPAbet names (any
        case) among "IY", "IH", "EH", "AE", "AA", "AO", "UH", "UW", "AH",
        "ER", or their IPA symbols "i", "ɪ", "ɛ", "æ", "ɑ" (also "a", as
        Jacobs et al. write it), "ɔ", "ʊ", "u", "ʌ", "ɝ" (also "ɚ"). The
        default is Jacobs et al.'s four, which overlap in pairs.
    groups : sequence of str, default=None
        Some of "men", "women", "children"; None: all three, or the keys of
        ``n_speakers`` if it is a dict. Speakers are numbered group by
        group, in this order.
    formants : sequence of str, default=("F1", "F2")
        The features, some of "F0", "F1", "F2", "F3", in this order.
    n_repetitions : int, default=2
        Tokens of every vowel by every speaker.
    speaker_spread : float or sequence of 4 floats, \
            default=(0.10, 0.05, 0.05, 0.05)
        Log-scale standard deviation of the speaker's factor on F0, F1, F2
        and F3; F1, F2 and F3 share one standard normal draw per speaker.
    token_spread : float or sequence of 4 floats, \
            default=(0.04, 0.08, 0.05, 0.04)
        Log-scale standard deviation of every token's independent factor on
        F0, F1, F2 and F3.
    random_state : int, RandomState instance or None, default=None
        Seed.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame of the features, ``speaker``, ``group`` and
        ``target``. Needs pandas.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray or DataFrame of shape (n_samples, n_formants)
            Frequencies in Hz; ``n_samples = n_speakers * n_repetitions *
            len(vowels)``, ordered by speaker, then repetition, then vowel.
        target : ndarray or Series of shape (n_samples,)
            Vowel codes, indices into ``target_names``.
        target_names : ndarray of shape (n_vowels,)
            ARPAbet names of the vowels.
        feature_names : list of str
            Names of the formants.
        speaker : ndarray of shape (n_samples,)
            Speaker id of every row, for splits by speaker (``GroupKFold``).
        group : ndarray of shape (n_samples,)
            Group of every row's speaker: "men", "women" or "children".
        frame : DataFrame of shape (n_samples, n_formants + 3) or None
            Features, speaker, group and target, if ``as_frame=True``.
        DESCR : str
            Description of the data set.
    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` above.

    See Also
    --------
    load_peterson_barney : Peterson & Barney's measurements.

    References
    ----------
    Peterson, G. E., & Barney, H. L. (1952). Control methods used in a study
    of the vowels. *The Journal of the Acoustical Society of America*, 24(2),
    175-184.

    Jacobs, R. A., Jordan, M. I., Nowlan, S. J., & Hinton, G. E. (1991).
    Adaptive mixtures of local experts. *Neural Computation*, 3(1), 79-87.

    Hillenbrand, J., Getty, L. A., Clark, M. J., & Wheeler, K. (1995).
    Acoustic characteristics of American English vowels. *The Journal of the
    Acoustical Society of America*, 97(5), 3099-3111.

    Examples
    --------
    >>> from hmexperts.datasets import make_vowels
    >>> vowels = make_vowels(random_state=0)
    >>> vowels.data.shape, vowels.feature_names, vowels.target_names.tolist()
    ((608, 2), ['F1', 'F2'], ['IY', 'IH', 'AA', 'AH'])
    >>> len(set(vowels.speaker)), vowels.group[[0, -1]].tolist()
    (76, ['men', 'children'])
    >>> X, y = make_vowels({"men": 5}, vowels=["i", "u"], random_state=0,
    ...                    return_X_y=True)
    >>> X.shape, y[:4].tolist()
    ((20, 2), [0, 1, 0, 1])
    """
    vowel_names = _names(vowels, "vowels", _VOWELS, "vowel", case=_vowel_name)
    feature_names = _names(formants, "formants", _FORMANTS, "formant", case=str.upper)
    group_names, counts = _speakers_per_group(n_speakers, groups)
    check_int(n_repetitions, "n_repetitions", min_val=1)
    speaker_sd = _spread(speaker_spread, "speaker_spread")
    token_sd = _spread(token_spread, "token_spread")
    for name, flag in (("return_X_y", return_X_y), ("as_frame", as_frame)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name}={flag!r}; expected True or False.")
    rng = check_random_state(random_state)

    speaker_group = np.repeat(np.arange(len(group_names)), counts)
    n_total = speaker_group.size
    n_vowels = len(vowel_names)
    vowel_index = [_VOWELS.index(vowel) for vowel in vowel_names]
    table = np.array([_MEAN_FORMANTS[group] for group in group_names], dtype=float)
    mean = table[speaker_group][:, vowel_index]  # (n_speakers, n_vowels, 4)

    # log f = log mean + speaker_sd * z_speaker + token_sd * z_token - sigma^2 / 2
    z_speaker = rng.normal(size=(n_total, 2))[:, [0, 1, 1, 1]]
    z_token = rng.normal(size=(n_total, n_repetitions, n_vowels, len(_FORMANTS)))
    log_freq = (
        np.log(mean)[:, None]
        + (speaker_sd * z_speaker)[:, None, None]
        + token_sd * z_token
        - (speaker_sd**2 + token_sd**2) / 2
    )
    columns = [_FORMANTS.index(name) for name in feature_names]
    data = np.exp(log_freq[..., columns]).reshape(-1, len(columns))
    target = np.tile(np.arange(n_vowels), n_total * n_repetitions)
    speaker = np.repeat(np.arange(n_total), n_repetitions * n_vowels)
    group = np.asarray(group_names)[speaker_group][speaker]

    descr = _vowels_descr(
        dict(zip(group_names, counts, strict=True)),
        vowel_names,
        feature_names,
        n_repetitions,
        speaker_sd,
        token_sd,
    )
    return _vowel_bunch(
        "make_vowels",
        data,
        target,
        vowel_names,
        feature_names,
        {"speaker": speaker, "group": group},
        descr,
        as_frame,
        return_X_y,
    )


def _vowel_bunch(
    name, data, target, vowel_names, feature_names, rows, descr, as_frame, return_X_y
):
    """A vowel loader's result, as scikit-learn's loaders give it: ``(X,
    y)``, or a Bunch with ``rows`` (per-row arrays: speaker, group, ...)
    beside the data; with ``as_frame``, pandas objects and a ``frame`` of
    the features, ``rows`` and the target."""
    frame = None
    if as_frame:
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError(
                f"{name} with as_frame=True requires pandas; install it (pip "
                "install pandas) or use as_frame=False."
            ) from error
        data = pd.DataFrame(data, columns=feature_names)
        target = pd.Series(target, name="target")
        columns = [pd.Series(values, name=key) for key, values in rows.items()]
        frame = pd.concat([data, *columns, target], axis=1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        target_names=np.asarray(vowel_names),
        feature_names=feature_names,
        **rows,
        frame=frame,
        DESCR=descr,
    )


def _vowels_descr(speakers, vowels, formants, n_repetitions, speaker_sd, token_sd):
    """The ``DESCR`` of a ``make_vowels`` Bunch."""
    who = ", ".join(f"{count} {group}" for group, count in speakers.items())
    return (
        "Synthetic vowel formants (make_vowels)\n"
        "--------------------------------------\n\n"
        f"{who}; {n_repetitions} token(s) of each of the vowels "
        f"{', '.join(vowels)} (ARPAbet) per speaker; features {', '.join(formants)} "
        "in Hz.\n\n"
        "Drawn around the mean F0-F3 of men, women and children published by "
        "Peterson & Barney (1952, J. Acoust. Soc. Am. 24(2), 175-184), with a "
        "log-normal factor per speaker (one on F0, one shared by F1-F3) and one per "
        "token and frequency; log-scale standard deviations (F0, F1, F2, F3): "
        f"speaker {speaker_sd.tolist()}, token {token_sd.tolist()}. The spreads are "
        "approximate, chosen to give the overlap seen in Peterson & Barney's "
        "scatter plots. Jacobs, Jordan, Nowlan & Hinton (1991, Neural Computation "
        "3(1), 79-87) fit the first mixture of experts to the vowels IY, IH, AA, AH "
        "of Peterson & Barney's data. These are not Peterson & Barney's "
        "measurements.\n"
    )


# Peterson & Barney's vowel symbols as Praat's table writes them (its IPA
# column, in Praat's ASCII codes); their rhotic [ɜ˞] in Unicode is in _PB_IPA.
_PRAAT_IPA = {
    "i": "IY",
    "\\ic": "IH",
    "\\ef": "EH",
    "\\ae": "AE",
    "\\as": "AA",
    "\\ct": "AO",
    "\\hs": "UH",
    "u": "UW",
    "\\vt": "AH",
    "\\er\\hr": "ER",
}
_PB_IPA = {**_PRAAT_IPA, "ɜ˞": "ER"}
_PB_COLUMNS = ["Type", "Sex", "Speaker", "Vowel", "IPA", "F0", "F1", "F2", "F3"]
_PB_GROUPS = {"m": "men", "w": "women", "c": "children"}
_PB_SEX = {"m": "male", "f": "female"}


def _pb_vowel_name(vowel):
    """The ARPAbet name of ``vowel``, given in ARPAbet (any case), IPA or
    Praat's codes of Peterson & Barney's symbols."""
    if isinstance(vowel, str) and vowel in _PB_IPA:
        return _PB_IPA[vowel]
    try:
        return _vowel_name(vowel)
    except ValueError:
        raise ValueError(
            f"Unknown vowel {vowel!r}; expected an ARPAbet name among "
            f"{list(_VOWELS)} (any case; Praat's Vowel column writes them in lower "
            f"case), an IPA symbol among {[*_IPA, 'ɜ˞']} or one of Praat's IPA codes "
            f"{list(_PRAAT_IPA)}."
        ) from None


def _data_file(name):
    """A file shipped in ``hmexperts/data``."""
    return resources.files("hmexperts").joinpath("data").joinpath(name)


def _read_peterson_barney():
    """The shipped table as a dict of string columns, in the file's order."""
    text = _data_file("peterson_barney.csv").read_text(encoding="utf-8")
    header, *rows = csv.reader(io.StringIO(text))
    widths = {len(row) for row in rows}
    if header != _PB_COLUMNS or len(rows) != 1520 or widths != {len(header)}:
        raise ValueError(
            f"hmexperts/data/peterson_barney.csv has the columns {header}, "
            f"{len(rows)} rows and rows of {sorted(widths)} fields; expected "
            f"{_PB_COLUMNS} and 1520 rows of {len(_PB_COLUMNS)} fields. The "
            "installation is damaged; reinstall hmexperts."
        )
    columns = zip(*rows, strict=True)
    return {name: np.asarray(col) for name, col in zip(header, columns, strict=True)}


def load_peterson_barney(
    *, vowels=None, formants=("F1", "F2"), return_X_y=False, as_frame=False
):
    """Load Peterson & Barney's (1952) vowel formants of 76 speakers.

    Peterson & Barney recorded 33 men, 28 women and 15 children saying the
    ten monophthong vowels of American English in h-V-d words (heed, hid,
    head, had, hod, hawed, hood, who'd, hud, heard), each twice, and
    measured the fundamental frequency F0 and the formants F1, F2 and F3 of
    every token: 1,520 rows. Jacobs, Jordan, Nowlan & Hinton (1991)
    introduced the mixture of experts on four of these vowels, [i], [ɪ],
    [a] and [ʌ], from F1 and F2. Every row carries its speaker, so that a
    split by speaker (``GroupShuffleSplit`` or ``GroupKFold`` with
    ``groups=speaker``) keeps each speaker's tokens on one side and a score
    measures how well a model does on new speakers.

    :func:`make_vowels` draws synthetic data of this shape around the
    published means. Both name the vowels in ARPAbet, the formants "F0" to
    "F3" and the groups "men", "women", "children", and both order the rows
    by speaker, then token, then vowel (in the order of ``vowels``), so that
    one stands in for the other; here the speakers keep Peterson & Barney's
    numbers, 1 to 76 (``make_vowels`` counts from 0).

    The table ships with the package (``hmexperts/data/peterson_barney.csv``,
    read without a download). It is the table of Praat's command "Create
    formant table (Peterson & Barney 1952)", saved by Praat unchanged. Its
    provenance, as Praat's source and manual give it: a file of the data
    (``verified_pb.data``) distributed by FTP from the University of
    Pennsylvania and described by Watrous (1991), based on a printed copy
    supplied by Ignatius Mattingly in 1990, who learnt from G. Peterson that
    children 62, 63, 65, 66, 67, 68, 73 and 76 were girls. Praat is under the
    GNU GPL; no licence or terms of use for the numbers themselves are stated
    in Praat, in the header of that file (as Praat's source quotes it) or
    anywhere else we looked, so their licence status is unclear. ``DESCR``
    gives the details, and the data's known oddities (a flag on 321 rows in
    the original file that Praat does not carry, two identical tokens, five
    rows with F2 equal to F1).

    Parameters
    ----------
    vowels : sequence of str, default=None
        The classes, in the order of the target's codes: ARPAbet names (any
        case, so also Praat's Vowel column) among "IY", "IH", "EH", "AE",
        "AA", "AO", "UH", "UW", "AH", "ER", their IPA symbols "i", "ɪ",
        "ɛ", "æ", "ɑ" (also "a", as Jacobs et al. write it), "ɔ", "ʊ", "u",
        "ʌ", "ɝ" (also "ɚ" and Peterson & Barney's "ɜ˞"), or Praat's codes
        of Peterson & Barney's symbols (its IPA column: "\\ic", "\\as",
        ...). None: all ten, in the order above. Jacobs et al.'s four are
        ``["IY", "IH", "AA", "AH"]``.
    formants : sequence of str, default=("F1", "F2")
        The features, some of "F0", "F1", "F2", "F3", in this order.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame of the features, ``speaker``, ``group``,
        ``sex``, ``repetition`` and ``target``. Needs pandas.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        data : ndarray or DataFrame of shape (n_samples, n_formants)
            Frequencies in Hz (whole numbers, as floats); ``n_samples`` is
            152 per vowel, ordered by speaker, then repetition, then vowel.
        target : ndarray or Series of shape (n_samples,)
            Vowel codes, indices into ``target_names``.
        target_names : ndarray of shape (n_vowels,)
            ARPAbet names of the vowels.
        feature_names : list of str
            Names of the formants.
        speaker : ndarray of shape (n_samples,)
            Peterson & Barney's speaker number of every row, 1 to 76: men
            1-33, women 34-61, children 62-76.
        group : ndarray of shape (n_samples,)
            Speaker type of every row: "men", "women" or "children".
        sex : ndarray of shape (n_samples,)
            "male" or "female" (the children are 7 boys and 8 girls).
        repetition : ndarray of shape (n_samples,)
            1 or 2: the first or second token of the vowel by the speaker,
            in the order of the file (which does not say whether that is
            the order of recording).
        frame : DataFrame of shape (n_samples, n_formants + 5) or None
            Features, speaker, group, sex, repetition and target, if
            ``as_frame=True``.
        DESCR : str
            Description of the data, their provenance and licence.
    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` above.

    See Also
    --------
    make_vowels : Synthetic data of the same shape.

    References
    ----------
    Peterson, G. E., & Barney, H. L. (1952). Control methods used in a study
    of the vowels. *The Journal of the Acoustical Society of America*, 24(2),
    175-184. https://doi.org/10.1121/1.1906875

    Watrous, R. L. (1991). Current status of Peterson-Barney vowel formant
    data. *The Journal of the Acoustical Society of America*, 89(5),
    2459-2460. https://doi.org/10.1121/1.400932

    Boersma, P., & Weenink, D. Praat: doing phonetics by computer.
    https://www.praat.org. Manual page "Create formant table (Peterson &
    Barney 1952)".

    Jacobs, R. A., Jordan, M. I., Nowlan, S. J., & Hinton, G. E. (1991).
    Adaptive mixtures of local experts. *Neural Computation*, 3(1), 79-87.

    Examples
    --------
    >>> from sklearn.model_selection import GroupShuffleSplit
    >>> from hmexperts.datasets import load_peterson_barney
    >>> pb = load_peterson_barney()
    >>> pb.data.shape, pb.feature_names
    ((1520, 2), ['F1', 'F2'])
    >>> pb.target_names.tolist()
    ['IY', 'IH', 'EH', 'AE', 'AA', 'AO', 'UH', 'UW', 'AH', 'ER']
    >>> pb.data[:2].tolist(), pb.speaker[:2].tolist(), pb.group[[0, -1]].tolist()
    ([[240.0, 2280.0], [390.0, 2030.0]], [1, 1], ['men', 'children'])

    Jacobs et al.'s four vowels, split by speaker:

    >>> jacobs = load_peterson_barney(vowels=["i", "ɪ", "a", "ʌ"])
    >>> jacobs.data.shape, jacobs.target_names.tolist()
    ((608, 2), ['IY', 'IH', 'AA', 'AH'])
    >>> splitter = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    >>> train, test = next(splitter.split(jacobs.data, groups=jacobs.speaker))
    >>> len(set(jacobs.speaker[train])), len(set(jacobs.speaker[test]))
    (57, 19)
    >>> set(jacobs.speaker[train]) & set(jacobs.speaker[test])
    set()
    """
    if vowels is None:
        vowel_names = list(_VOWELS)
    else:
        vowel_names = _names(vowels, "vowels", _VOWELS, "vowel", case=_pb_vowel_name)
    feature_names = _names(formants, "formants", _FORMANTS, "formant", case=str.upper)
    for name, flag in (("return_X_y", return_X_y), ("as_frame", as_frame)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name}={flag!r}; expected True or False.")

    table = _read_peterson_barney()
    speaker = table["Speaker"].astype(np.int64)
    code = {name: k for k, name in enumerate(vowel_names)}
    target = np.array([code.get(name.upper(), -1) for name in table["Vowel"]])
    # The file lists the two tokens of a speaker and vowel one after the other.
    repetition = np.empty(speaker.size, dtype=np.int64)
    count = {}
    keys = zip(speaker.tolist(), table["Vowel"].tolist(), strict=True)
    for row, key in enumerate(keys):
        count[key] = repetition[row] = count.get(key, 0) + 1
    keep = np.flatnonzero(target >= 0)
    rows = keep[np.lexsort((target[keep], repetition[keep], speaker[keep]))]

    data = np.column_stack(
        [table[name][rows].astype(np.float64) for name in feature_names]
    )
    target = target[rows].astype(np.int64)
    speaker = speaker[rows]
    group = np.array([_PB_GROUPS[value] for value in table["Type"][rows]])
    sex = np.array([_PB_SEX[value] for value in table["Sex"][rows]])
    repetition = repetition[rows]

    return _vowel_bunch(
        "load_peterson_barney",
        data,
        target,
        vowel_names,
        feature_names,
        {"speaker": speaker, "group": group, "sex": sex, "repetition": repetition},
        _data_file("README.rst").read_text(encoding="utf-8"),
        as_frame,
        return_X_y,
    )


def make_expert_clusters(
    n_samples=1000,
    n_features=2,
    *,
    n_clusters=4,
    cluster_sep=12.0,
    class_sep=4.0,
    noise=1.0,
    shuffle=True,
    random_state=None,
):
    """Draw clusters, each split into two classes along a direction of its own.

    Chen, Deng, Wu, Gu & Li (2022) explain why a mixture of experts beats a
    single network on data made of clusters: every example carries a
    cluster-centre signal and a class signal whose direction depends on the
    cluster, so that one expert per cluster, routed by the cluster centre,
    separates the classes where a single model does not. Their examples are
    made of patches seen by convolutional experts; here the signals and the
    noise are summed into one vector, a setting for linear gates and linear
    experts.

    The cluster centres lie on a circle in the plane of the first two
    features, ``cluster_sep`` apart from their neighbours. The two classes
    of cluster ``k`` (at angle ``phi_k = 2 pi k / n_clusters``) have means
    ``class_sep / 2`` either side of its centre along the tangent of the
    circle, ``(-sin phi_k, cos phi_k)``, so that the label boundaries, lines
    through the centres, turn with the clusters and the class signal
    averages to zero over the clusters. Every sample adds isotropic
    Gaussian noise of standard deviation ``noise`` in all ``n_features``
    features; the features after the second carry noise only. The clusters
    are of equal size (to one sample) and each is split evenly between the
    classes.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples, at least ``n_clusters``.
    n_features : int, default=2
        Number of features, at least 2.
    n_clusters : int, default=4
        Number of clusters, each the domain of one linear expert.
    cluster_sep : float, default=12.0
        Distance between neighbouring cluster centres, >= 0.
    class_sep : float, default=4.0
        Distance between the means of the two classes of a cluster, >= 0.
    noise : float, default=1.0
        Standard deviation of the Gaussian noise, >= 0.
    shuffle : bool, default=True
        Shuffle the samples; if False they come cluster by cluster.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Classes, 0 or 1.
    cluster : ndarray of shape (n_samples,)
        Cluster of every sample, in ``[0, n_clusters)``.

    References
    ----------
    Chen, Z., Deng, Y., Wu, Y., Gu, Q., & Li, Y. (2022). Towards
    understanding mixture of experts in deep learning. *Advances in Neural
    Information Processing Systems 35* (NeurIPS 2022).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from hmexperts import MixtureOfExpertsClassifier
    >>> from hmexperts.datasets import make_expert_clusters
    >>> X, y, cluster = make_expert_clusters(400, random_state=0)
    >>> X.shape, sorted(set(y.tolist())), sorted(set(cluster.tolist()))
    ((400, 2), [0, 1], [0, 1, 2, 3])
    >>> linear = LogisticRegression().fit(X, y)
    >>> moe = MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0)
    >>> bool(linear.score(X, y) < 0.75 < 0.9 < moe.fit(X, y).score(X, y))
    True
    """
    check_int(n_clusters, "n_clusters", min_val=1)
    check_int(n_samples, "n_samples", min_val=1)
    if n_samples < n_clusters:
        raise ValueError(
            f"n_samples={n_samples} is smaller than n_clusters={n_clusters}; every "
            "cluster needs a sample."
        )
    check_int(n_features, "n_features", min_val=2)
    check_real(cluster_sep, "cluster_sep", min_val=0)
    check_real(class_sep, "class_sep", min_val=0)
    check_real(noise, "noise", min_val=0)
    rng = check_random_state(random_state)

    angle = 2 * np.pi * np.arange(n_clusters) / n_clusters
    # neighbours on a circle of radius r are 2 r sin(pi / K) apart
    radius = cluster_sep / (2 * np.sin(np.pi / n_clusters)) if n_clusters > 1 else 0.0
    centers = np.zeros((n_clusters, n_features))
    centers[:, 0], centers[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    directions = np.zeros((n_clusters, n_features))
    directions[:, 0], directions[:, 1] = -np.sin(angle), np.cos(angle)

    sizes = np.full(n_clusters, n_samples // n_clusters)
    sizes[: n_samples % n_clusters] += 1
    cluster = np.repeat(np.arange(n_clusters), sizes)
    y = np.concatenate([np.arange(size) % 2 for size in sizes])
    # x = centre_k + (+-1) class_sep / 2 * direction_k + noise * z
    sign = 2.0 * y - 1.0
    X = (
        centers[cluster]
        + (sign * class_sep / 2)[:, None] * directions[cluster]
        + noise * rng.normal(size=(n_samples, n_features))
    )
    if shuffle:
        order = rng.permutation(n_samples)
        X, y, cluster = X[order], y[order], cluster[order]
    return X, y, cluster
