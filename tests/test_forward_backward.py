"""The forward-backward and Viterbi kernels against log-domain NumPy references."""
import numpy as np
import pytest
from scipy.special import logsumexp

from fastem._kernels import forward_backward as fb


def reference_posteriors(L, startprob, transmat):
    """Log-domain forward-backward of one sequence: (log p(x), gamma, start, xi summed)."""
    T, k = L.shape
    with np.errstate(divide="ignore"):
        log_a, log_pi = np.log(transmat), np.log(startprob)
    fwd = np.empty((T, k))
    bwd = np.zeros((T, k))
    fwd[0] = log_pi + L[0]
    for t in range(1, T):
        fwd[t] = logsumexp(fwd[t - 1][:, None] + log_a, axis=0) + L[t]
    for t in range(T - 2, -1, -1):
        bwd[t] = logsumexp(log_a + (L[t + 1] + bwd[t + 1])[None, :], axis=1)
    ll = logsumexp(fwd[-1])
    gamma = np.exp(fwd + bwd - ll)
    xi = np.zeros((k, k))
    for t in range(1, T):
        xi += np.exp(fwd[t - 1][:, None] + log_a + (L[t] + bwd[t])[None, :] - ll)
    return ll, gamma, gamma[0], xi


def reference_viterbi(L, startprob, transmat):
    T, k = L.shape
    with np.errstate(divide="ignore"):
        log_a, log_pi = np.log(transmat), np.log(startprob)
    delta = log_pi + L[0]
    back = np.zeros((T, k), dtype=int)
    for t in range(1, T):
        scores = delta[:, None] + log_a
        back[t] = scores.argmax(axis=0)
        delta = scores.max(axis=0) + L[t]
    path = [int(delta.argmax())]
    for t in range(T - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return delta.max(), np.array(path[::-1])


def random_chain(rng, k, zeros=False):
    startprob = rng.dirichlet(np.ones(k))
    transmat = rng.dirichlet(np.ones(k), size=k)
    if zeros:  # left-right: no transitions back
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob[1:] = 0.0
        startprob[0] = 1.0
    return startprob, transmat


def run(L, lengths, startprob, transmat, n_threads):
    n, k = L.shape
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    frame = L.copy()
    gamma = np.empty_like(L)
    chain = np.zeros(1 + k + k * k)
    seq_ll = np.empty(len(lengths))
    fb.forward_backward(frame, bounds, startprob, transmat, n_threads, gamma, np.empty(n),
                        np.empty((n_threads, fb.workspace_size(k))), np.empty((len(lengths), chain.size)),
                        chain, seq_ll)
    return gamma, chain, seq_ll


@pytest.mark.parametrize("k", [4, 7, 18])  # whole vectors, a partial one, the generic loop
@pytest.mark.parametrize("zeros", [False, True])
def test_forward_backward_matches_log_domain_reference(zeros, k):
    rng = np.random.default_rng(0)
    lengths = [1, 7, 30, 2]
    L = rng.normal(scale=30.0, size=(sum(lengths), k))  # far apart: scaling must hold
    startprob, transmat = random_chain(rng, k, zeros)
    gamma, chain, seq_ll = run(L, lengths, startprob, transmat, 2)
    start = 0
    ll_sum, start_sum, xi_sum = 0.0, np.zeros(k), np.zeros((k, k))
    for s, T in enumerate(lengths):
        ll, g, st, xi = reference_posteriors(L[start:start + T], startprob, transmat)
        np.testing.assert_allclose(seq_ll[s], ll, rtol=1e-12)
        np.testing.assert_allclose(gamma[start:start + T], g, rtol=1e-9, atol=1e-13)
        ll_sum, start_sum, xi_sum = ll_sum + ll, start_sum + st, xi_sum + xi
        start += T
    np.testing.assert_allclose(chain[0], ll_sum, rtol=1e-12)
    np.testing.assert_allclose(chain[1:1 + k], start_sum, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(chain[1 + k:].reshape(k, k), xi_sum, rtol=1e-9, atol=1e-13)
    if zeros:  # forbidden transitions get exactly zero counts
        assert np.all(chain[1 + k:].reshape(k, k)[transmat == 0] == 0.0)


def test_forward_backward_bitwise_for_any_thread_count():
    rng = np.random.default_rng(1)
    k, lengths = 5, rng.integers(1, 50, size=40)
    L = rng.normal(size=(lengths.sum(), k))
    startprob, transmat = random_chain(rng, k)
    one = run(L, lengths, startprob, transmat, 1)
    two = run(L, lengths, startprob, transmat, 2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_impossible_row_gives_minus_infinity():
    L = np.zeros((3, 2))
    L[1] = -np.inf
    _, chain, seq_ll = run(L, [3], np.array([0.5, 0.5]), np.full((2, 2), 0.5), 1)
    assert chain[0] == -np.inf and np.all(chain[1:] == 0.0)


def test_viterbi_matches_reference():
    rng = np.random.default_rng(2)
    k, lengths = 4, [1, 12, 25]
    L = rng.normal(scale=3.0, size=(sum(lengths), k))
    startprob, transmat = random_chain(rng, k, zeros=True)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    n = L.shape[0]
    states, best = np.empty(n, dtype=np.intp), np.empty(len(lengths))
    with np.errstate(divide="ignore"):
        fb.viterbi(L, bounds, np.log(startprob), np.log(transmat), 2,
                   np.empty((n, k), dtype=np.intp), np.empty((2, 2 * k)), states, best)
    start = 0
    for s, T in enumerate(lengths):
        ref_best, ref_path = reference_viterbi(L[start:start + T], startprob, transmat)
        np.testing.assert_allclose(best[s], ref_best, rtol=1e-13)
        np.testing.assert_array_equal(states[start:start + T], ref_path)
        start += T


def test_bad_bounds_raise():
    L = np.zeros((4, 2))
    with pytest.raises(ValueError, match="at least one row"):
        run(L, [4, 0], np.array([0.5, 0.5]), np.full((2, 2), 0.5), 1)


@pytest.mark.parametrize("k", [4, 18])
@pytest.mark.parametrize("cuts", [[0], [0, 1, 2, 30, 56], list(range(57))])
def test_segments_give_bitwise_the_whole_sequence(cuts, k):
    """forward_segment over segments, then backward_segment from the last, equal one
    forward_backward call bitwise (posteriors, log p, counts), also when the forward pass
    starts from beta_segment's scaled densities; viterbi_segment and viterbi_backtrack equal
    viterbi."""
    rng = np.random.default_rng(5)
    T = 57
    L = rng.normal(size=(T, k)) * 3
    startprob, transmat = random_chain(rng, k, zeros=True)
    gamma, chain, _ = run(L, [T], startprob, transmat, 1)
    parts = list(zip(cuts, cuts[1:] + [T]))
    message, checkpoints = np.empty(fb.message_size(k)), []
    for a, b in parts:
        checkpoints.append(message.copy())
        ll = fb.forward_segment(L[a:b].copy(), message, a == 0, startprob, transmat,
                                np.empty((b - a, k)), np.empty(b - a))
    assert ll == chain[0]
    message, counts, post = np.ones(k), np.zeros(k + k * k), np.empty((T, k))
    for (a, b), prev in reversed(list(zip(parts, checkpoints))):
        frame, scale = L[a:b].copy(), np.empty(b - a)
        fb.forward_segment(frame, prev.copy(), a == 0, startprob, transmat, post[a:b], scale)
        alone = message.copy()  # the backward messages without the forward pass: the same
        scaled, shift = L[a:b].copy(), np.empty(b - a)
        fb.beta_segment(scaled, transmat, alone, shift)
        again, alpha = prev.copy(), np.empty((b - a, k))  # forward from beta_segment's scaling
        fb.forward_segment(scaled, again, a == 0, startprob, transmat, alpha, shift, scaled=True)
        for x, y in ((scaled, frame), (alpha, post[a:b]), (shift, scale)):
            np.testing.assert_array_equal(x, y)
        assert fb.backward_segment(frame, post[a:b], prev if a else np.empty(0), transmat,
                                   message, counts)
        if a:  # (the first segment's walk stops at its first row)
            np.testing.assert_array_equal(alone, message)
    np.testing.assert_array_equal(post, gamma)
    np.testing.assert_array_equal(counts, chain[1:])
    with np.errstate(divide="ignore"):
        log_start, log_trans = np.log(startprob), np.log(transmat)
    delta, deltas, back = np.empty(k), [], np.empty((T, k), dtype=np.intp)
    for a, b in parts:
        deltas.append(delta.copy())
        fb.viterbi_segment(L[a:b], delta, a == 0, log_start, log_trans, back[a:b])
    best, path = reference_viterbi(L, startprob, transmat)
    assert delta.max() == best
    states, state = np.empty(T, dtype=np.intp), int(delta.argmax())
    for a, b in reversed(parts):
        state = fb.viterbi_backtrack(back[a:b], state, states[a:b])
    np.testing.assert_array_equal(states, path)


def test_rows_of_tiny_likelihood_keep_the_scaling_finite():
    """A reachable state whose density is exp(-700) of the row's best (a row scale c_t below
    2^-1000, renormalised before its inverse is taken) gives the log-domain reference's log p
    and posteriors, whole and in segments."""
    L = np.zeros((6, 2))
    L[2] = [-700.0, 0.0]  # the chain sits in state 0, which cannot reach state 1
    startprob, transmat = np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.5, 0.5]])
    gamma, chain, seq_ll = run(L, [6], startprob, transmat, 1)
    ll, g, _, xi = reference_posteriors(L, startprob, transmat)
    np.testing.assert_allclose(seq_ll[0], ll, rtol=1e-13)
    np.testing.assert_allclose(gamma, g, atol=1e-13)
    np.testing.assert_allclose(chain[3:].reshape(2, 2), xi, rtol=1e-12, atol=1e-13)
    message = np.empty(fb.message_size(2))
    for a, b in [(0, 3), (3, 6)]:
        seg = fb.forward_segment(L[a:b].copy(), message, a == 0, startprob, transmat,
                                 np.empty((b - a, 2)), np.empty(b - a))
    assert seg == seq_ll[0]



@pytest.mark.parametrize("factor, finite", [(14.0, True), (25.0, False)])
def test_states_the_chain_cannot_reach_yet(factor, finite):
    """A left-right chain forced through states 0..4 over its first rows while every row fits
    state 5 best. With densities down to e^-350 of the row's best the posteriors are the
    log-domain reference's, whole and in segments; with e^-625 (e^-750 after the first row)
    the first row's forward and backward beliefs are e^-750 apart, beyond double range in
    this scaled domain: the sequence gets log p = -inf and no statistics, never NaN."""
    k, T = 6, 30
    L = np.tile(-factor * (5 - np.arange(k)) ** 2, (T, 1))
    startprob = np.eye(k)[0]
    transmat = 0.5 * (np.eye(k) + np.eye(k, k=1))
    transmat[-1, -1] = 1.0
    gamma, chain, seq_ll = run(L, [T], startprob, transmat, 1)
    parts = [(0, 3), (3, 4), (4, 20), (20, T)]
    message, checkpoints = np.empty(fb.message_size(k)), []
    for a, b in parts:
        checkpoints.append(message.copy())
        fb.forward_segment(L[a:b].copy(), message, a == 0, startprob, transmat,
                           np.empty((b - a, k)), np.empty(b - a))
    message, counts, post = np.ones(k), np.zeros(k + k * k), np.empty((T, k))
    ok = True
    for (a, b), prev in reversed(list(zip(parts, checkpoints))):
        frame = L[a:b].copy()
        fb.forward_segment(frame, prev.copy(), a == 0, startprob, transmat, post[a:b],
                           np.empty(b - a))
        ok &= fb.backward_segment(frame, post[a:b], prev if a else np.empty(0), transmat,
                                  message, counts)
    if not finite:
        assert seq_ll[0] == -np.inf and not ok
        assert np.all(gamma == 0.0) and np.all(chain[1:] == 0.0)
        return
    ll, g, start, xi = reference_posteriors(L, startprob, transmat)
    assert ok
    np.testing.assert_allclose(seq_ll[0], ll, rtol=1e-13)
    for ours, counted in ((gamma, chain[1 + k:]), (post, counts[k:])):
        np.testing.assert_allclose(ours, g, atol=1e-12)
        np.testing.assert_allclose(counted.reshape(k, k), xi, rtol=1e-10, atol=1e-12)
