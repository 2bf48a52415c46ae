"""The first M-step: the exact components from every row, the Newton
refinement of the others from a strided sample of a large data set."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

import hmexperts._em as em
from hmexperts import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from hmexperts._components import NewtonComponent
from hmexperts._em import InMemoryData, _refine_sample
from hmexperts.datasets import make_moe


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "estimator, task",
    [
        (MixtureOfExpertsRegressor, "regression"),
        (MixtureOfExpertsClassifier, "classification"),
    ],
)
def test_the_refinement_reads_a_sample_and_em_every_row(monkeypatch, estimator, task):
    monkeypatch.setattr(em, "_REFINE_ROWS", 500)
    # the rows of every chunk read from the start's responsibilities, and
    # "refine" where a Newton step of the refinement is taken
    read, first = [], []
    chunk_stats, refine = em._chunk_stats, NewtonComponent.refine

    def recording(chunk, *args):
        read.append(chunk.X.shape[0])
        if args[5] is not None:
            first.append(chunk.X.shape[0])
        return chunk_stats(chunk, *args)

    def refining(self, stats, xp):
        first.append("refine")
        return refine(self, stats, xp)

    monkeypatch.setattr(em, "_chunk_stats", recording)
    monkeypatch.setattr(NewtonComponent, "refine", refining)
    X, y, _ = make_moe(3000, 2, n_experts=3, task=task, random_state=0)
    model = estimator(3, max_iter=3, tol=0, random_state=0).fit(X, y)
    # one pass over every row (the exact M-step), then the refinement on every
    # 6th row, from its sums at the start on those rows: every step's
    # objective is on the same rows
    assert first[:3] == [3000, 500, "refine"]
    assert {rows for rows in first[1:] if rows != "refine"} == {500}
    # EM reads every row
    assert read[len(first) - first.count("refine") :] == [3000] * (model.n_iter_ + 1)


def test_the_sample_is_strided_and_weighs_as_much_as_the_data():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20_000, 3)), rng.normal(size=20_000)
    weight = rng.uniform(0.5, 2.0, size=20_000)
    init = rng.dirichlet(np.ones(4), size=20_000)
    data = InMemoryData(X, y, weight, xp, 6, init)
    sample = _refine_sample(data, xp)
    rows = np.arange(0, 20_000, 3)  # ceil(20000 / 8192) = 3
    assert sample.n_samples == len(rows) <= em._REFINE_ROWS
    np.testing.assert_array_equal(sample.X, X[rows])
    np.testing.assert_array_equal(sample.init, init[rows])
    # the penalties weigh against the same total weight
    assert float(np.sum(sample.sample_weight)) == pytest.approx(weight.sum())
    np.testing.assert_allclose(
        sample.sample_weight / weight[rows], weight.sum() / weight[rows].sum()
    )
    small = InMemoryData(X[:1000], y[:1000], weight[:1000], xp, 6)
    assert _refine_sample(small, xp) is small
