"""Command line: ``python -m hmexperts demo``.

A demo of the estimators on built-in data; ``DEMO_DESCRIPTION`` below says
what it does, and is what ``python -m hmexperts demo --help`` prints.
"""

import argparse
import os
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, __version__
from .datasets import make_moe, make_vowels
from .diagnostics import expert_load, specialisation_matrix

DEFAULT_FIGURE = "hmexperts_demo.png"


def demo(n_samples=6000, random_state=0):
    """Fit an HME to data from a known HME and print the comparison.

    Parameters
    ----------
    n_samples : int, default=6000
        Samples drawn, two thirds for training and one third for testing.
    random_state : int, default=0
        Seed of the data.
    """
    X, y, truth = make_moe(
        n_samples, 2, n_experts=2, depth=2, noise=0.3, random_state=random_state
    )
    n_train = 2 * n_samples // 3
    X_train, y_train, X_test, y_test = (
        X[:n_train],
        y[:n_train],
        X[n_train:],
        y[n_train:],
    )

    print(f"hmexperts {__version__}: a depth-2 hierarchical mixture of experts")
    print(f"Data: {n_train} training and {n_samples - n_train} test samples drawn from")
    print("a known tree of 3 gates (2 children each) and 4 linear-Gaussian experts.\n")

    model = MixtureOfExpertsRegressor(n_experts=2, depth=2, n_init=5, random_state=0)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    state = "converged" if model.converged_ else "stopped at max_iter"
    print(f"Fit: {seconds:.2f}s, {model.n_iter_} EM iterations ({state}), n_init=5\n")

    fitted = np.column_stack([model.expert_coef_, model.expert_intercept_])
    true = np.column_stack([truth.expert_coef, truth.expert_intercept])
    rows, cols = linear_sum_assignment(
        ((fitted[:, None] - true[None]) ** 2).sum(axis=2)
    )
    print("Experts (matched to the truth):  y = a*x1 + b*x2 + c + noise(sd)")
    print("  leaf   fitted a, b, c, sd              true a, b, c, sd")
    for leaf, j in sorted(zip(rows, cols, strict=True), key=lambda pair: pair[1]):
        f = (*fitted[leaf], np.sqrt(model.expert_variance_[leaf]))
        t = (*true[j], np.sqrt(truth.expert_variance[j]))
        print(
            f"  {leaf}   "
            + " ".join(f"{v:6.2f}" for v in f)
            + "     "
            + " ".join(f"{v:6.2f}" for v in t)
        )

    share = model.predict_gates(X_test).mean(axis=0)
    print("\nShare of the test inputs each leaf's gates give it:")
    print("  " + "  ".join(f"leaf {leaf}: {s:.2f}" for leaf, s in enumerate(share)))

    fit_ll = model.log_likelihood(X_test, y_test).mean()
    true_ll = truth.model.log_likelihood(X_test, y_test).mean()
    linear = LinearRegression().fit(X_train, y_train)
    print("\nHeld-out results")
    print(f"  mean log-likelihood: fitted {fit_ll:.4f}, true model {true_ll:.4f}")
    print(
        f"  R^2: mixture {model.score(X_test, y_test):.3f}, "
        f"one linear model {linear.score(X_test, y_test):.3f}"
    )
    mean, std = model.predict(X_test, return_std=True)
    coverage = np.mean(np.abs(y_test - mean) <= 2 * std)
    print(f"  share of targets within 2 predictive sd: {coverage:.3f}")


def vowels_demo(random_state=0, figure=DEFAULT_FIGURE):
    """Fit four experts to vowel formants, print how they share the work and
    draw their regions.

    Parameters
    ----------
    random_state : int, default=0
        Seed of the data and of the split by speaker.
    figure : str or None, default="hmexperts_demo.png"
        Path of the PNG file with the gate regions and the experts' decision
        boundaries; ``None`` draws nothing.
    """
    vowels = make_vowels(random_state=random_state)
    # Fit on the vowels' names, so that the printout and the figure's legend
    # name the classes as the points do.
    X, y, names = vowels.data, vowels.target_names[vowels.target], vowels.target_names
    splitter = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=random_state)
    train, test = next(splitter.split(X, y, groups=vowels.speaker))
    n_test_speakers = len(np.unique(vowels.speaker[test]))

    print("\nA mixture of 4 experts on vowels")
    print(
        f"Data: the first two formants (F1, F2, in Hz) of the vowels {', '.join(names)}"
    )
    print(
        f"said by {len(np.unique(vowels.speaker))} synthetic men, women and children "
        "(make_vowels), split by speaker.\n"
    )
    model = MixtureOfExpertsClassifier(n_experts=4, n_init=5, random_state=0)
    model.fit(X[train], y[train])
    linear = make_pipeline(StandardScaler(), LogisticRegression(C=100))
    linear.fit(X[train], y[train])
    print(f"Test accuracy ({len(test)} tokens of {n_test_speakers} held-out speakers)")
    print(f"  mixture of 4 experts: {model.score(X[test], y[test]):.3f}")
    print(f"  logistic regression:  {linear.score(X[test], y[test]):.3f}")
    print("  A few tokens either way are noise at this size. On this synthetic data")
    print("  the vowels are almost linearly separable, and logistic regression is")
    print("  about as accurate as any classifier (see the gallery example 'Vowels');")
    print("  what the mixture adds is the division of labour below.\n")

    load = expert_load(model, X[test])
    share, vowel_names = specialisation_matrix(
        model, X[test], y[test], normalize="expert"
    )
    print("Experts: share of the test tokens the gate gives each (expert load),")
    print("and the vowels among them")
    for leaf, row in enumerate(share):
        order = np.argsort(-row)
        main = ", ".join(
            f"{vowel_names[k]} {row[k]:.0%}" for k in order if row[k] >= 0.1
        )
        print(f"  expert {leaf}: load {load[leaf]:.2f}   {main}")

    if figure is not None:
        _draw_vowels(model, X, y, figure)


def _draw_vowels(model, X, labels, path):
    """Gate regions and expert boundaries side by side, written to ``path``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print(
            '\nFigure: not drawn; matplotlib is needed: pip install "hmexperts[plot]"'
        )
        return
    from .plotting import plot_expert_boundaries, plot_gate_regions

    # A Figure without pyplot: no global state, no display needed.
    fig = Figure(figsize=(13, 5), layout="constrained")
    ax_gate, ax_expert = fig.subplots(1, 2)
    plot_gate_regions(model, X, labels, features=(1, 0), ax=ax_gate)
    plot_expert_boundaries(model, X, labels, features=(1, 0), ax=ax_expert)
    for ax in (ax_gate, ax_expert):
        # The phoneticians' vowel chart: F2 across, F1 down, both reversed.
        ax.set_xlabel("F2 (Hz)")
        ax.set_ylabel("F1 (Hz)")
        ax.invert_xaxis()
        ax.invert_yaxis()
    fig.suptitle("A mixture of 4 experts on synthetic vowel formants (make_vowels)")
    fig.savefig(path, dpi=100)
    print(f"\nFigure (gate regions and expert boundaries): {os.path.abspath(path)}")


# The help is plain text: argparse prints it as written, so no RST markup.
DESCRIPTION = """\
Mixtures of experts and hierarchical mixtures of experts for scikit-learn,
fit by EM. Run 'python -m hmexperts demo' to see them at work."""

DEMO_DESCRIPTION = """\
The demo has two parts. It fits a depth-2 hierarchical mixture of experts to
data drawn from a known one and prints what it learned next to the truth.
Then it fits a mixture of four experts to synthetic vowel formants, tests it
on held-out speakers next to logistic regression, prints how the experts
share the vowels, and, with matplotlib installed, draws the gate regions and
the experts' decision boundaries to a PNG file."""


def _parser():
    """The command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m hmexperts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "demo",
        help="fit mixtures of experts on built-in data and report",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--n-samples",
        type=int,
        metavar="N",
        default=6000,
        help="samples of the HME part (default: %(default)s)",
    )
    run.add_argument(
        "--random-state",
        type=int,
        metavar="SEED",
        default=0,
        help="seed of the drawn data and of the split by speaker; the models' "
        "own seeds are fixed (default: %(default)s)",
    )
    drawing = run.add_mutually_exclusive_group()
    drawing.add_argument(
        "--figure",
        metavar="PATH",
        default=DEFAULT_FIGURE,
        help="PNG file of the vowel figure (default: %(default)s)",
    )
    drawing.add_argument(
        "--no-figure",
        dest="figure",
        action="store_const",
        const=None,
        help="draw no figure",
    )
    return parser


def main(argv=None):
    """Run the command line; ``argv`` defaults to ``sys.argv[1:]``."""
    args = _parser().parse_args(argv)
    demo(args.n_samples, args.random_state)
    vowels_demo(args.random_state, args.figure)


if __name__ == "__main__":
    main()
