"""Data larger than memory: Dask arrays, chunked passes and partial_fit.

EM runs in passes over chunks of rows; a Dask array's blocks are such
chunks, read where they lie. With the same starting responsibilities, a fit
from a Dask array (Dask's threads, or a two-process ``distributed``
cluster) equals the in-memory fit up to the order of its sums; so does an
in-memory fit read in many small chunks. Predictions on a Dask array are
lazy Dask arrays equal to the eager ones. ``partial_fit`` (stepwise EM) over
passes of mini-batches approaches the batch fit. Bad input fails with a
clear error, found where it lies, and leaves the fitted state as it was.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from hmexperts import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _scaling,
    _solvers,
)
from hmexperts.datasets import make_moe

da = pytest.importorskip(
    "dask.array",
    reason='Dask is not installed; `pip install "hmexperts[dask]"` (.ci/run does)',
)

MODELS = {
    "regression": MixtureOfExpertsRegressor,
    "classification": MixtureOfExpertsClassifier,
}
TASKS = list(MODELS)


def _data(task, n=3000, seed=0):
    X, y, _ = make_moe(
        n, 3, n_experts=2, depth=2, task=task, n_classes=3, random_state=seed
    )
    rng = np.random.RandomState(seed)
    return X, y, rng.dirichlet(np.ones(4), size=n), rng.uniform(0.5, 2.0, size=n)


def _same_fit(a, b, rtol):
    """Same objective history and parameters, to ``rtol`` relative."""
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)
    for d in range(len(a.gate_coef_)):
        scale = np.max(np.abs(a.gate_coef_[d]))
        np.testing.assert_allclose(
            b.gate_coef_[d], a.gate_coef_[d], rtol=rtol, atol=rtol * scale
        )
    scale = np.max(np.abs(a.expert_coef_))
    np.testing.assert_allclose(
        b.expert_coef_, a.expert_coef_, rtol=rtol, atol=rtol * scale
    )


def _fit_quietly(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


# -- equal fits -------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("init", ["numpy", "dask"])
def test_dask_fit_equals_the_in_memory_fit_from_the_same_start(task, init):
    X, y, resp, w = _data(task)
    params = dict(n_experts=2, depth=2, max_iter=25, tol=0)
    memory = _fit_quietly(MODELS[task](init_params=resp, **params), X, y, w)
    given = resp if init == "numpy" else da.from_array(resp, chunks=(500, 4))
    lazy = _fit_quietly(
        MODELS[task](init_params=given, **params),
        da.from_array(X, chunks=(700, 3)),  # blocks of another size
        da.from_array(y, chunks=900),
        sample_weight=da.from_array(w, chunks=1000),
    )
    _same_fit(memory, lazy, rtol=1e-8)


@pytest.mark.parametrize("task", TASKS)
def test_dask_fit_with_the_k_means_start_equals_the_in_memory_fit(task):
    # the start clusters the same sampled rows, and every block finds its
    # rows' nearest centres
    X, y, _, _ = _data(task)
    memory = MODELS[task](n_experts=2, depth=2, random_state=0).fit(X, y)
    lazy = MODELS[task](n_experts=2, depth=2, random_state=0).fit(
        da.from_array(X, chunks=(700, 3)), da.from_array(y, chunks=700)
    )
    _same_fit(memory, lazy, rtol=1e-8)


def test_sampled_start_and_scaling_are_the_same_in_memory_and_from_dask(
    monkeypatch,
):
    # Above SAMPLE_ROWS rows, standardisation and the start read every k-th
    # row: the same rows from NumPy and from Dask.
    monkeypatch.setattr(_scaling, "SAMPLE_ROWS", 400)
    X, y, _, _ = _data("regression")
    memory = MixtureOfExpertsRegressor(2, depth=2, random_state=0).fit(X, y)
    lazy = MixtureOfExpertsRegressor(2, depth=2, random_state=0).fit(
        da.from_array(X, chunks=(700, 3)), da.from_array(y, chunks=700)
    )
    np.testing.assert_allclose(lazy._scaling.x_scale, memory._scaling.x_scale)
    _same_fit(memory, lazy, rtol=1e-8)


def test_fit_on_a_two_process_local_cluster_equals_the_in_memory_fit():
    distributed = pytest.importorskip(
        "distributed",
        reason='distributed is not installed; `pip install "hmexperts[dask]"`',
    )
    X, y, resp, _ = _data("regression")
    params = dict(n_experts=2, depth=2, init_params=resp, max_iter=15, tol=0)
    memory = _fit_quietly(MixtureOfExpertsRegressor(**params), X, y)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        lazy = _fit_quietly(
            MixtureOfExpertsRegressor(**params),
            da.from_array(X, chunks=(1000, 3)),
            da.from_array(y, chunks=1000),
        )
    _same_fit(memory, lazy, rtol=1e-8)


@pytest.mark.parametrize("task", TASKS)
def test_chunked_and_unchunked_in_memory_fits_agree(task, monkeypatch):
    X, y, _, w = _data(task)
    params = dict(n_experts=2, depth=2, random_state=0, max_iter=30, tol=0)
    whole = _fit_quietly(MODELS[task](**params), X, y, w)
    monkeypatch.setattr(_solvers, "_CHUNK_ELEMENTS", 700)  # chunks of ~100 rows
    monkeypatch.setattr(_solvers, "_MIN_CHUNK_ROWS", 1)
    chunked = _fit_quietly(MODELS[task](**params), X, y, w)
    _same_fit(whole, chunked, rtol=1e-10)


# -- lazy predictions ------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_predictions_on_dask_arrays_are_lazy_and_equal(task):
    X, y, _, _ = _data(task, n=1000)
    model = MODELS[task](n_experts=2, depth=2, random_state=0).fit(X, y)
    X_dask, y_dask = da.from_array(X, chunks=(300, 3)), da.from_array(y, chunks=300)
    methods = {
        "predict": (X,),
        "predict_gates": (X,),
        "apply": (X,),
        "log_likelihood": (X, y),
        "predict_responsibilities": (X, y),
    }
    if task == "classification":
        methods.update(predict_proba=(X,), predict_log_proba=(X,))
    for name, args in methods.items():
        lazy_args = (X_dask, y_dask)[: len(args)]
        lazy = getattr(model, name)(*lazy_args)
        assert isinstance(lazy, da.Array), name
        eager = getattr(model, name)(*args)
        np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12, err_msg=name)
    if task == "regression":
        mean, std = model.predict(X_dask, return_std=True)
        np.testing.assert_allclose(std.compute(), model.predict(X, True)[1])


# -- learners ---------------------------------------------------------------------


def test_learner_experts_on_dask_gather_a_capped_subsample():
    X, y, _ = make_moe(3000, 2, n_experts=2, noise=0.2, random_state=0)
    model = MixtureOfExpertsRegressor(
        2, expert=Ridge(), max_samples_per_expert=300, max_iter=10, random_state=0
    )
    _fit_quietly(model, da.from_array(X, chunks=(500, 2)), y)
    assert model.score(X, y) > 0.8
    # every learner was fit on at most the cap
    assert all(expert.n_features_in_ == 2 for expert in model.experts_)


def test_learner_experts_on_dask_need_a_cap():
    X, y, _ = make_moe(300, random_state=0)
    model = MixtureOfExpertsRegressor(2, expert=Ridge())
    with pytest.raises(ValueError, match="needs max_samples_per_expert"):
        model.fit(da.from_array(X, chunks=(100, 2)), y)


# -- partial_fit ------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_partial_fit_over_passes_approaches_the_batch_fit(task):
    # Stepwise EM over 3 passes of 20 mini-batches, both with 5 starts (the
    # stream's on its first batch). Measured on seeds 0-2: within 0.011 nats
    # per sample of the batch fit's log-likelihood.
    X, y, _ = make_moe(
        20000,
        2,
        n_experts=2,
        depth=2,
        task=task,
        n_classes=3,
        noise=0.3,
        random_state=2,
    )
    batch = MODELS[task](2, depth=2, n_init=5, random_state=0).fit(X, y)
    stream = MODELS[task](2, depth=2, n_init=5, random_state=0)
    classes = np.arange(3) if task == "classification" else None
    order = np.random.RandomState(2).permutation(len(X))
    for _ in range(3):
        for rows in np.array_split(order, 20):
            stream.partial_fit(X[rows], y[rows], classes=classes)
    assert stream.n_iter_ == 60
    gap = batch.log_likelihood(X, y).mean() - stream.log_likelihood(X, y).mean()
    assert gap < 0.02


@pytest.mark.parametrize("task", TASKS)
def test_partial_fit_continues_a_fit_without_forgetting_it(task):
    # The stream starts from the fit's statistics and counts the fit as
    # 3000 / 30 = 100 batches: one small batch moves it a little. (A stream
    # that started afresh refit the experts to the 30 rows: -0.38 nats.)
    X, y, _ = make_moe(
        6000, 2, n_experts=3, task=task, n_classes=3, noise=0.3, random_state=0
    )
    model = MODELS[task](3, random_state=0).fit(X[:3000], y[:3000])
    before = model.log_likelihood(X[3000:], y[3000:]).mean()
    model.partial_fit(X[3000:3030], y[3000:3030])
    assert model.n_iter_ == 1
    assert model._stream.fit_batches == 100
    after = model.log_likelihood(X[3000:], y[3000:]).mean()
    assert abs(after - before) < 0.01


def test_partial_fit_steps_use_the_training_algorithm(monkeypatch):
    import hmexperts._base as base

    seen = []
    stepwise_em = base.stepwise_em

    def spy(*args):
        seen.append(args[-1])
        return stepwise_em(*args)

    monkeypatch.setattr(base, "stepwise_em", spy)
    X, y, _ = make_moe(2000, 2, n_experts=2, depth=2, random_state=0)
    model = MixtureOfExpertsRegressor(2, depth=2, algorithm="stochastic", top_k=2)
    for rows in np.array_split(np.arange(2000), 4):
        model.partial_fit(X[rows], y[rows])
    assert [routing.algorithm for routing in seen] == ["stochastic"] * 4
    assert {routing.seed for routing in seen} == {model._stream.seed}
    assert model._stream.seed is not None


@pytest.mark.parametrize("continuing", [False, True])
def test_extreme_weights_in_a_stream_rescale_exactly(continuing):
    # Weights of 2**20 are rescaled by 2**-20 and the penalties with them:
    # the stream with penalties of 2**20 is that of unit weights and unit
    # penalties, whose objective is the same up to the factor. Later
    # batches of other scales (which alone would be rescaled otherwise)
    # keep the stream's factor.
    X, y, _ = make_moe(1500, 2, noise=0.3, random_state=0)
    big = dict(gate_alpha=2.0**20, expert_alpha=2.0**20)
    small = dict(gate_alpha=1.0, expert_alpha=1.0)
    models = []
    for weight, alpha in ((2.0**20, big), (1.0, small)):
        model = MixtureOfExpertsRegressor(2, random_state=0, **alpha)
        batches = np.array_split(np.arange(1500), 3)
        if continuing:
            model.fit(X[batches[0]], y[batches[0]], sample_weight=weight)
            batches = batches[1:]
        for rows, scale in zip(batches, (1.0, 0.5, 4.0), strict=False):
            model.partial_fit(X[rows], y[rows], sample_weight=weight * scale)
        models.append(model)
    for name in ("expert_coef_", "expert_variance_"):
        np.testing.assert_allclose(
            getattr(models[0], name), getattr(models[1], name), rtol=1e-7
        )
    for a, b in zip(models[0].gate_coef_, models[1].gate_coef_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


class _DaskFrameStandIn:
    """Looks like a Dask DataFrame to the check (dask.dataframe needs
    pyarrow, which the test environment does not install)."""


_DaskFrameStandIn.__module__ = "dask.dataframe.dask_expr._collection"
_DaskFrameStandIn.__name__ = "DataFrame"


def test_dask_dataframes_are_refused_with_the_conversion_to_use():
    X, y, _ = make_moe(300, 2, random_state=0)
    frame = _DaskFrameStandIn()
    message = r"X is a Dask DataFrame.*X.to_dask_array\(lengths=True\)"
    with pytest.raises(TypeError, match=message):
        MixtureOfExpertsRegressor(2).fit(frame, y)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=message):
        model.predict(frame)
    with pytest.raises(TypeError, match=r"y is a Dask DataFrame"):
        model.partial_fit(X, frame)


def test_partial_fit_checks_its_input():
    X, y, _ = make_moe(400, 2, task="classification", n_classes=3, random_state=0)
    model = MixtureOfExpertsClassifier(2, random_state=0)
    with pytest.raises(ValueError, match="first call to partial_fit needs classes="):
        model.partial_fit(X, y)
    model.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="X has 3 features, but .* expecting 2"):
        model.partial_fit(np.hstack([X, X[:, :1]]), y)
    with pytest.raises(ValueError, match=r"y has labels \[7\] not in classes_"):
        model.partial_fit(X, np.where(y == 2, 7, y))
    assert model.n_iter_ == 1  # the failed calls changed nothing
    assert not hasattr(MixtureOfExpertsRegressor(expert=Ridge()), "partial_fit")


# -- bad input ----------------------------------------------------------------------


def test_dask_input_chunked_along_features_is_refused():
    X, y, _ = make_moe(300, 4, random_state=0)
    with pytest.raises(ValueError, match=r"chunked along its columns.*rechunk"):
        MixtureOfExpertsRegressor(2).fit(da.from_array(X, chunks=(100, 2)), y)


def test_dask_input_of_unknown_chunk_sizes_is_refused():
    X, y, _ = make_moe(300, 2, random_state=0)
    X_dask = da.from_array(X, chunks=(100, 2))
    filtered = X_dask[X_dask[:, 0] > -10]  # unknown number of rows per block
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        MixtureOfExpertsRegressor(2).fit(filtered, y)


def test_nan_inside_a_block_is_named_and_leaves_the_fit_as_it_was():
    X, y, _ = make_moe(600, 2, random_state=0)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    before = model.predict(X)
    X_bad = X.copy()
    X_bad[450, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in block 2 \(rows"):
        model.fit(da.from_array(X_bad, chunks=(200, 2)), y)
    np.testing.assert_array_equal(model.predict(X), before)


def test_a_cloned_dask_fit_is_picklable():
    import pickle

    X, y, _ = make_moe(600, 2, random_state=0)
    model = MixtureOfExpertsRegressor(2, random_state=0).fit(
        da.from_array(X, chunks=(200, 2)), y
    )
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert clone(model).get_params() == model.get_params()
