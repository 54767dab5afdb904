"""The HMM data path: every source gives the in-memory result, sequences longer than a block
stream through checkpointed forward-backward and Viterbi (equal to the whole sequence, in
bounded memory), per-row outputs to arrays and .npy files, and missing observations."""
import os
import threading
import tracemalloc

import numpy as np
import pytest

from fastem import hmm
from fastem.drivers import sequences
from fastem.drivers.sequences import SequenceDriver

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")
hmmlearn_base = pytest.importorskip("hmmlearn.base")

K = 3


def sticky_data(n, d=2, seed=0):
    """Rows of a sticky 3-state chain with Gaussian emissions."""
    rng = np.random.default_rng(seed)
    states = np.zeros(n, dtype=int)
    switch = rng.random(n) < 0.05
    for t in range(1, n):
        states[t] = rng.integers(K) if switch[t] else states[t - 1]
    means = np.array([[0.0] * d, [3.0] * d, [-2.0] * d])
    return means[states] + rng.normal(size=(n, d))


def given(model, d=2):
    """Set fixed starting parameters (no initialisation draws)."""
    model.startprob_ = np.array([0.5, 0.3, 0.2])
    model.transmat_ = np.array([[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
    model.means_ = np.array([[0.5] * d, [2.0] * d, [-1.0] * d])
    model.covars_ = np.ones((K, d))
    return model


def make(module=hmm, n_iter=6, **kw):
    return given(module.GaussianHMM(K, "diag", n_iter=n_iter, tol=-np.inf, init_params="",
                                    **kw))


def results(model, X, lengths):
    model.fit(X, lengths)
    return (list(model.monitor_.history), model.means_, model.covars_, model.transmat_,
            model.score(X, lengths), model.predict_proba(X, lengths), model.predict(X, lengths),
            model.decode(X, lengths, algorithm="map")[1], model.bic(X, lengths))


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------ sources
@pytest.mark.parametrize("kind", ["memmap", "path", "pathlib", "h5py", "zarr", "lengths.npy"])
def test_every_source_gives_bitwise_the_in_memory_result(tmp_path, kind):
    X = sticky_data(900, seed=1)
    lengths = np.array([300, 1, 450, 149])
    path = tmp_path / "x.npy"
    np.save(path, X)
    np.save(tmp_path / "lengths.npy", lengths)
    source, source_lengths = X, lengths
    if kind == "memmap":
        source = np.load(path, mmap_mode="r")
    elif kind == "path":
        source = str(path)
    elif kind == "pathlib":
        source = path
    elif kind == "h5py":
        h5py = pytest.importorskip("h5py")
        f = h5py.File(tmp_path / "x.h5", "w")
        source = f.create_dataset("X", data=X)
    elif kind == "zarr":
        zarr = pytest.importorskip("zarr")
        source = zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, chunks=(128, 2),
                                   dtype=X.dtype)
        source[:] = X
    else:
        source_lengths = str(tmp_path / "lengths.npy")
    # chunk_size=4: blocks of 256 rows, so the 450-row sequence streams in segments
    for chunk_size in (None, 4):
        assert_same(results(make(chunk_size=chunk_size), X, lengths),
                    results(make(chunk_size=chunk_size), source, source_lengths))


# ------------------------------------------------------------------ long sequences
def drivers(X, lengths, block_rows):
    return [SequenceDriver(X, lengths, chunk_size=8, n_threads=n, block_rows=rows)
            for n, rows in ((1, 10**9), (1, block_rows), (2, block_rows))]


@pytest.mark.parametrize("lengths", [None, [5, 700, 3, 292]])
@pytest.mark.parametrize("block_rows,kept", [(1, None), (37, None), (128, None), (37, (3, 4)),
                                             (37, (0, 0))])
def test_checkpointed_passes_equal_the_whole_sequence(lengths, block_rows, kept, monkeypatch):
    """Segments of block_rows rows (block_rows=1: every row a segment), the first half's
    walked back and the second half's forward from the end's backward messages, give the
    posteriors, log-likelihoods and Viterbi path of the whole sequence bitwise, the emission
    statistics and chain counts to rounding (summed in another order), identically for 1 and
    2 threads; with the default kept segments, or as many as a smaller budget leaves (kept)."""
    if kept is not None:
        most = sequences._Kept.doubles(block_rows, K, sequences.KEPT_HEAD, sequences.KEPT_TAIL)
        budget = 8 * most * kept[1] // sequences.KEPT_TAIL  # room for kept[1] tail segments
        monkeypatch.setattr(sequences, "KEPT_BUDGET_BYTES", budget)
        assert sequences._Kept.counts(block_rows, K) == kept
    X = sticky_data(1000, seed=2)
    model = make().fit(X, lengths)
    _, family, packed = model._inference(X, lengths)
    outs = []
    for driver in drivers(X, lengths, block_rows):
        gamma = np.full((X.shape[0], K), np.nan)

        def write(start, rows, gamma=gamma):
            gamma[start:start + rows.shape[0]] = rows
        seq_ll = driver.posteriors(family, packed, write)
        states = np.full(X.shape[0], -1, dtype=np.intp)
        best = driver.viterbi(family, packed, states)
        stats, worst = driver.accumulate(family, packed)
        outs.append((gamma, seq_ll, driver.score(family, packed), states, best, stats, worst))
    whole, seg1, seg2 = outs
    for a, b in zip(seg1, seg2):
        np.testing.assert_array_equal(a, b)
    for i in range(5):
        np.testing.assert_array_equal(whole[i], seg1[i])
    np.testing.assert_allclose(seg1[5], whole[5], rtol=1e-12, atol=1e-25)
    np.testing.assert_array_equal(seg1[6], whole[6])


def test_long_sequence_fit_matches_hmmlearn():
    X = sticky_data(3000, seed=3)
    ours, theirs = make(chunk_size=4), make(hmmlearn_hmm)  # ours: 12 segments of 256 rows
    ours.fit(X)
    theirs.fit(X)
    np.testing.assert_allclose(ours.monitor_.history, theirs.monitor_.history, rtol=1e-10)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-9,
                                   atol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert ours.decode(X)[0] == pytest.approx(theirs.decode(X)[0], rel=1e-12)


def test_long_sequence_streams_in_bounded_memory(tmp_path):
    """A 200,000-row sequence from a .npy file in segments of 1,024 rows: no allocation near
    its T x K messages (4.8 MB) while fitting, scoring or writing posteriors and states to
    .npy files. A block holding the whole sequence exceeds the same bound."""
    T = 200_000
    path = tmp_path / "x.npy"
    np.save(path, sticky_data(T, seed=4).astype(np.float32))
    bound = T * K * 8 // 4

    def peak(chunk_size, run):
        model = make(n_iter=2, chunk_size=chunk_size)
        tracemalloc.start()
        run(model)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    assert peak(16, lambda m: m.fit(path)) < bound
    assert peak(16, lambda m: m.score(path)) < bound
    assert peak(16, lambda m: m.predict_proba(path, out=tmp_path / "p.npy")) < bound
    assert peak(16, lambda m: m.predict(path, out=tmp_path / "s.npy")) < bound
    assert peak(4096, lambda m: m.score(path)) > bound  # 262,144-row blocks: held whole


def test_per_row_outputs_to_arrays_and_npy_files(tmp_path):
    X = sticky_data(1200, seed=5)
    lengths = [700, 500]
    model = make(chunk_size=4).fit(X, lengths)
    log_prob, gamma = model.score_samples(X, lengths)
    states = model.predict(X, lengths)
    out = np.empty((1200, K))
    assert model.predict_proba(X, lengths, out=out) is out
    np.testing.assert_array_equal(out, gamma)
    value, on_disk = model.score_samples(X, lengths, out=tmp_path / "p.npy")
    assert value == log_prob and isinstance(on_disk, np.memmap)
    np.testing.assert_array_equal(on_disk, gamma)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), gamma)
    np.testing.assert_array_equal(model.predict(X, lengths, out=tmp_path / "s.npy"), states)
    labels = np.empty(1200, dtype=np.intp)
    model.decode(X, lengths, algorithm="map", out=labels)
    np.testing.assert_array_equal(labels, gamma.argmax(axis=1))
    assert sorted(os.listdir(tmp_path)) == ["p.npy", "s.npy"]  # no temporaries left
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match="is the input file"):
        model.predict_proba(tmp_path / "x.npy", lengths, out=tmp_path / "x.npy")
    with pytest.raises(ValueError, match="shape"):
        model.predict_proba(X, lengths, out=np.empty((1200, K + 1)))


# ------------------------------------------------------------------ missing observations
class MissingGaussianHMM(hmmlearn_hmm.GaussianHMM):
    """hmmlearn with an all-NaN row as a missing observation: emission density 1, no
    emission statistics (a missing row's X is zero, and its posterior is taken back out of
    the occupancies)."""

    def _compute_log_likelihood(self, X):
        missing = np.isnan(X).all(axis=1)
        frame = super()._compute_log_likelihood(np.where(missing[:, None], 0.0, X))
        frame[missing] = 0.0
        return frame

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        missing = np.isnan(X).all(axis=1)
        super()._accumulate_sufficient_statistics(
            stats, np.where(missing[:, None], 0.0, X), lattice, posteriors, fwdlattice,
            bwdlattice)
        stats["post"] -= posteriors[missing].sum(axis=0)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_missing_observations_match_hmmlearn_with_unit_densities(monkeypatch, chunk_size):
    monkeypatch.setattr(hmmlearn_base, "check_array", lambda X, **kw: np.asarray(X))
    X = sticky_data(800, seed=6)
    rng = np.random.default_rng(6)
    X[rng.random(800) < 0.1] = np.nan
    X[[0, 299, 300, 501, 799]] = np.nan  # first and last rows of sequences, a run of two
    lengths = [300, 500]
    ours = make(nan_policy="omit", chunk_size=chunk_size, n_iter=8)
    theirs = given(MissingGaussianHMM(K, "diag", n_iter=8, tol=-np.inf, init_params=""))
    ours.fit(X, lengths)
    theirs.fit(X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, theirs.monitor_.history, rtol=1e-10)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-9,
                                   atol=1e-12)
    log_prob, gamma = ours.score_samples(X, lengths)
    ref_log_prob, ref_gamma = theirs.score_samples(X, lengths)
    assert log_prob == pytest.approx(ref_log_prob, rel=1e-12)
    np.testing.assert_allclose(gamma, ref_gamma, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))


def test_missing_rows_equal_a_chain_without_emissions():
    """Missing rows at a sequence's end add nothing (the chain's rows sum to one): X followed
    by missing rows scores as X, and [x0, missing, missing, missing] as [x0]."""
    X = sticky_data(50, seed=7)
    model = make(nan_policy="omit").fit(X)
    with_missing = np.vstack([X, np.full((3, 2), np.nan)])
    assert model.score(with_missing) == pytest.approx(model.score(X), rel=1e-14)
    only = np.full((4, 2), np.nan)
    only[0] = X[0]
    assert model.score(only) == pytest.approx(model.score(X[:1]), rel=1e-14)


def test_missing_rows_errors():
    X = sticky_data(100, seed=8)
    X[10] = np.nan
    with pytest.raises(ValueError, match="row 10"):
        make().fit(X)  # nan_policy="raise" is the default
    partial = X.copy()
    partial[20, 1] = np.nan
    with pytest.raises(ValueError, match="row 20 holds NaN beside numbers"):
        make(nan_policy="omit").fit(partial)
    infinite = X.copy()
    infinite[30] = np.inf
    with pytest.raises(ValueError, match="row 30"):
        make(nan_policy="omit").fit(infinite)
    with pytest.raises(ValueError, match="every row is missing"):
        make(nan_policy="omit").fit(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="nan_policy must be"):
        make(nan_policy="drop").fit(X)
    counts = np.random.default_rng(0).poisson(3, (60, 2)).astype(float)
    counts[5] = np.nan
    counts[7, 0] = -1
    with pytest.raises(ValueError, match="row 7"):
        hmm.PoissonHMM(K, nan_policy="omit").fit(counts)
    assert hmm.PoissonHMM(K, nan_policy="omit", n_iter=3).fit(counts[:7]).score(counts[:7]) < 0


@pytest.mark.parametrize("row", [200, 600])  # in the first half, in the second
def test_impossible_row_in_a_streamed_sequence(row):
    """A row no reachable state can emit (a chain stuck in the state it started in, state 1
    ruled out by the first row, then a row at state 1's mean, exp(-5000) below state 0's
    density: zero in double precision) gives -inf and zero posteriors, held whole or in
    segments, and fit raises naming the sequence's first row. A state no path reaches does not
    count (state 1 with a zero start probability: the row's log-density under state 0 is
    finite, and so is the log-likelihood)."""
    X = np.random.default_rng(0).normal(size=(1000, 1))
    X[row] = 100.0
    for chunk_size in (None, 2):
        model = hmm.GaussianHMM(2, init_params="", n_iter=2, chunk_size=chunk_size)
        model.startprob_, model.transmat_ = np.array([0.5, 0.5]), np.eye(2)
        model.means_, model.covars_ = np.array([[0.0], [100.0]]), np.ones((2, 1))
        assert model.score(X) == -np.inf
        np.testing.assert_array_equal(model.predict_proba(X), 0.0)
        with pytest.raises(ValueError, match="became -inf at iteration 1 .row 0 "):
            model.fit(X)
        model.startprob_ = np.array([1.0, 0.0])
        log_density = -0.5 * (X[:, 0] ** 2 + np.log(2 * np.pi))
        assert model.score(X) == pytest.approx(log_density.sum(), rel=1e-12)
        np.testing.assert_array_equal(model.predict_proba(X), [[1.0, 0.0]] * 1000)


@pytest.mark.parametrize("make_model", [
    lambda **kw: hmm.CategoricalHMM(K, n_iter=5, tol=-np.inf, random_state=0, **kw),
    lambda **kw: hmm.PoissonHMM(K, n_iter=5, tol=-np.inf, random_state=0, **kw)])
def test_count_models_from_files_and_in_segments(tmp_path, make_model):
    """Integer codes and counts from a .npy path give bitwise the in-memory fit; a sequence
    streamed in segments (chunk_size=2: 128-row blocks) agrees with it held whole."""
    X = np.random.default_rng(12).poisson(1.5, (900, 1))
    X[X > 3] = 3
    np.save(tmp_path / "x.npy", X)
    lengths = [700, 200]
    fits = [make_model(chunk_size=chunk).fit(source, lengths)
            for chunk, source in ((2, X), (2, tmp_path / "x.npy"), (None, X))]
    assert list(fits[0].monitor_.history) == list(fits[1].monitor_.history)
    np.testing.assert_allclose(fits[0].monitor_.history, fits[2].monitor_.history, rtol=1e-12)
    np.testing.assert_array_equal(fits[0].predict(X, lengths), fits[2].predict(X, lengths))


@pytest.mark.parametrize("chunk_size, n_threads", [(None, 1), (1, 1), (1, 2)])
def test_a_state_no_path_reaches_keeps_the_posteriors_finite(chunk_size, n_threads):
    """State 2 has a zero start probability and no transition into it, yet fits the second
    half of the data e^-24 per row better than the states the chain can be in: backward
    messages scaled by the forward pass overflowed there (inf, then NaN posteriors through
    0 * inf). Now its densities are zero in the E-step: hmmlearn's log-domain results (whose
    "scaling" implementation gives NaN too), held whole and in 64-row segments."""
    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(0, 1, 150), rng.normal(10, 1, 150)])[:, None]

    def model(module, **kw):
        m = module.GaussianHMM(3, "diag", init_params="", params="st", n_iter=3, tol=-np.inf,
                               **kw)
        m.startprob_ = np.array([0.5, 0.5, 0.0])
        m.transmat_ = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
        m.means_, m.covars_ = np.array([[0.0], [3.0], [10.0]]), np.ones((3, 1))
        return m

    ours = model(hmm, chunk_size=chunk_size, n_threads=n_threads)
    theirs = model(hmmlearn_hmm, implementation="log")
    log_prob, gamma = ours.score_samples(X)
    ref_log_prob, ref_gamma = theirs.score_samples(X)
    assert log_prob == pytest.approx(ref_log_prob, rel=1e-12)
    np.testing.assert_allclose(gamma, ref_gamma, atol=1e-10)
    ours.fit(X)
    theirs.fit(X)
    np.testing.assert_allclose(ours.monitor_.history, theirs.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(ours.transmat_, theirs.transmat_, atol=1e-10)


@pytest.mark.parametrize("nan_policy", ["omit", "marginalize"])
def test_long_sequence_with_labels_and_missing_rows_over_two_threads(nan_policy):
    """One 700-row sequence with missing rows (and entries) and labelled rows, in 64-row
    segments from both ends: bitwise the same fit, posteriors and log-likelihood for 1 and 2
    threads, and the fit of the sequence held whole to rounding."""
    X = sticky_data(700, seed=10)
    rng = np.random.default_rng(10)
    X[rng.random(700) < 0.05] = np.nan
    X[[0, 349, 350, 699]] = np.nan  # the halves' first and last rows
    if nan_policy == "marginalize":
        X[rng.random(700) < 0.05, 1] = np.nan
    y = np.where(rng.random(700) < 0.05, rng.integers(K, size=700), -1)
    outs = []
    for chunk_size, n_threads in ((None, 1), (1, 1), (1, 2)):
        model = make(nan_policy=nan_policy, chunk_size=chunk_size, n_threads=n_threads)
        model.fit(X, y=y)
        outs.append((np.array(model.monitor_.history), model.means_, model.transmat_,
                     *model.score_samples(X)))
    whole, one, two = outs
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(one, whole):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_interrupting_one_half_stops_the_other():
    """Ctrl-C on the thread walking the first half back stops the thread walking the second
    half forward at its next segment (it does not finish its half first)."""
    X = sticky_data(2000, seed=11)
    model = make(n_iter=1).fit(X)
    _, family, packed = model._inference(X, None)
    driver = SequenceDriver(X, None, chunk_size=8, n_threads=2, block_rows=1)
    main, others = threading.get_ident(), []

    def consume(start, gamma):
        if threading.get_ident() == main:
            raise KeyboardInterrupt
        others.append(start)

    with pytest.raises(KeyboardInterrupt):
        driver.posteriors(family, packed, consume)
    assert len(others) < 1000  # of the second half's 1000 one-row segments
