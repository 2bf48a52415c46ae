"""Mixtures of experts and hierarchical mixtures of experts for scikit-learn.

A gating network (a softmax over a linear function of ``x``, nested into a
tree for the hierarchical model) says how much to trust each expert for this
``x``; each expert is a model of ``y`` given ``x``; the prediction pools the
experts by the gates' weights. Fitting is EM (Jordan & Jacobs, 1994).
"""

from ._classification import MixtureOfExpertsClassifier
from ._config import config_context, get_config, set_config
from ._grow import GrowthStep
from ._regression import MixtureOfExpertsRegressor

__version__ = "0.1.0"

__all__ = [
    "GrowthStep",
    "MixtureOfExpertsClassifier",
    "MixtureOfExpertsRegressor",
    "config_context",
    "get_config",
    "set_config",
    "__version__",
]
