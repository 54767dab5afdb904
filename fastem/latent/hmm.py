"""The hidden Markov chain: rows in sequences, the state of each row drawn given the previous one.

A hidden Markov model adds start probabilities pi (K,) and transition probabilities A (K, K) to
its family's components (the emissions). Its E-step is forward-backward over each sequence
(``fastem/_kernels/forward_backward.pyx``) from the family's emission log-densities; the
posteriors gamma then go to the family's own statistics kernel (``fit_block(..., resp=gamma)``),
so every family serves as emissions. The chain's part of the EM objective is
``sum_k n_k log pi_k + sum_jk N_jk log A_jk`` (expected start and transition counts, plus
Dirichlet(alpha) log-priors under MAP-EM), maximised in closed form row by row as hmmlearn does:
``pi ~ max(n + alpha - 1, 0)``, normalised; a probability that is zero stays exactly zero
(left-right models), since its counts are zero and it is masked besides.

Statistics: the family's vector ``[ll, total, s0, family part]`` (``fastem.frame``) with the
chain's counts ``[start (K), transitions (K*K)]`` appended; ``ll`` is the forward-backward
log-likelihood of the sequences.
"""
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._kernels import forward_backward as fb
from ..families.base import check_distributions, xlogy
from ..frame import Statistics


@dataclass
class HMMParams:
    """A hidden Markov model's parameters: start (K,) and transition (K, K) probabilities and
    the family's emission (component) parameters."""

    startprob: np.ndarray
    transmat: np.ndarray
    components: Any

    @property
    def n_components(self):
        return self.startprob.shape[0]


class HMMPacked(NamedTuple):
    """What an E-step needs: the family's packing (no weights folded in), the chain, and which
    states it can ever reach (``live``, see :func:`reachable`)."""

    emission: Any
    startprob: np.ndarray
    transmat: np.ndarray
    live: np.ndarray

    @property
    def log_norm(self):
        return self.emission.log_norm

    @property
    def dtype(self):
        return self.emission.dtype


def chain_size(k):
    """Entries the chain appends to the family's statistics: start and transition counts."""
    return k + k * k


def reachable(startprob, transmat):
    """(K,) bool: the states a path can ever visit (from a possible start through possible
    transitions). The others have zero probability at every row, and their densities are set
    to zero in the E-step: one that fits the data far better than every state the chain can be
    in (a state whose start and incoming transition probabilities are all zero) would otherwise
    set each row's scale (its densities underflowing to zero, a log-likelihood of -inf) and
    dominate the backward messages, whose entries at the states the chain can be in then fall
    more than 1e308 below it (NaN posteriors before the self-normalised backward pass,
    ``fastem/_kernels/forward_backward.pyx``; -inf now)."""
    live = np.asarray(startprob) > 0
    step = np.asarray(transmat) > 0
    while True:
        grown = live | step[live].any(axis=0)
        if (grown == live).all():
            return live
        live = grown


def check_chain(startprob, transmat, n_components=None):
    """``(startprob, transmat)`` as float64 arrays, or ValueError naming what is wrong: shapes,
    negative or NaN entries, sums other than one (then renormalised exactly); see
    :func:`~fastem.families.base.check_distributions`."""
    k = np.shape(startprob)[0] if n_components is None else n_components
    return (check_distributions("startprob_", startprob, (k,)),
            check_distributions("transmat_", transmat, (k, k)))


class HiddenMarkov:
    """Start and transition probabilities over a family's components, for ``fastem.em``.

    ``startprob_prior`` (scalar or (K,)) and ``transmat_prior`` (scalar or (K, K)): Dirichlet
    concentrations (1 is maximum likelihood; below 1 counts are clipped at zero, as hmmlearn
    does). ``frozen``: a subset of {"startprob", "transmat", "emissions"} that every M-step
    keeps ("emissions": all of the family's parameters).
    """

    def __init__(self, startprob_prior=1.0, transmat_prior=1.0, frozen=()):
        self.startprob_prior = np.asarray(startprob_prior, dtype=np.float64)
        self.transmat_prior = np.asarray(transmat_prior, dtype=np.float64)
        for name, prior in (("startprob_prior", self.startprob_prior),
                            ("transmat_prior", self.transmat_prior)):
            if not np.all(np.isfinite(prior)) or np.any(prior <= 0):
                raise ValueError(f"{name} must be positive and finite")
        unknown = set(frozen) - {"startprob", "transmat", "emissions"}
        if unknown:
            raise ValueError("frozen may name 'startprob', 'transmat' or 'emissions'; got "
                             f"{sorted(unknown)}")
        self.frozen = frozenset(frozen)

    # ------------------------------------------------------------ the E-step
    def pack(self, family, params, dtype):
        """The family's packing of the emissions (component constants only) and the chain."""
        k = params.n_components
        return HMMPacked(family.pack(params.components, dtype, np.full(k, 1.0 / k)),
                         params.startprob, params.transmat,
                         reachable(params.startprob, params.transmat))

    def split(self, stats, k):
        """``(family statistics view, start counts (K,), transition counts (K, K))``."""
        size = chain_size(k)
        chain = stats[stats.size - size:]
        return (Statistics(stats[:stats.size - size], k), chain[:k],
                chain[k:].reshape(k, k))

    def rebase(self, family, stats, from_packed, to_packed):
        """The statistics of a pass made with ``from_packed`` restated in ``to_packed``'s
        frame: the family's part by the family's ``rebase`` over the emission packings; the
        chain's counts are frame-free."""
        size = chain_size(from_packed.log_norm.shape[0])
        emissions = family.rebase(stats[:stats.size - size], from_packed.emission,
                                  to_packed.emission)
        return np.concatenate([emissions, stats[stats.size - size:]])

    # ------------------------------------------------------------ the M-step
    def chain_update(self, start, trans, params):
        """hmmlearn's M-step of pi and A: Dirichlet modes with counts clipped at zero, zeros
        kept, each distribution normalised (a row that saw no transition stays all zero)."""
        startprob, transmat = params.startprob, params.transmat
        if "startprob" not in self.frozen:
            startprob = _normalized(np.where(
                params.startprob == 0, 0.0, np.maximum(self.startprob_prior - 1 + start, 0)))
        if "transmat" not in self.frozen:
            transmat = _normalized(np.where(
                params.transmat == 0, 0.0, np.maximum(self.transmat_prior - 1 + trans, 0)))
        return startprob, transmat

    def m_step(self, family, stats, packed, params):
        """Exact (or MAP) M-step of the chain and the emissions; HMMs re-seed nothing."""
        view, start, trans = self.split(stats, packed.log_norm.shape[0])
        components = params.components if "emissions" in self.frozen \
            else family.m_step(view, packed.emission, params.components)
        return HMMParams(*self.chain_update(start, trans, params), components), \
            np.empty(0, dtype=np.intp)

    def lost_components(self, family, view):
        """None: a state without data keeps its parameters (as in hmmlearn), so the EM loop
        never asks this structure to re-seed."""
        return np.empty(0, dtype=np.intp)

    def objective(self, family, params, stats, packed):
        """J(theta) + log p(theta) up to a constant: the chain's part plus the emissions'."""
        view, start, trans = self.split(stats, packed.log_norm.shape[0])
        value = float(xlogy(start, params.startprob).sum() + xlogy(trans, params.transmat).sum())
        value += self.log_prior_chain(params) + family.objective(params.components, view,
                                                                 packed.emission)
        return value if not np.isnan(value) else -np.inf

    def newton_step(self, family, params, stats, packed):
        """A partial M-step's proposal: the chain to its maximiser, the emissions by the
        family's Newton step."""
        view, start, trans = self.split(stats, packed.log_norm.shape[0])
        components = params.components if "emissions" in self.frozen \
            else family.newton_step(params.components, view, packed.emission)
        if components is None:
            return None
        return HMMParams(*self.chain_update(start, trans, params), components)

    def interpolate(self, family, params, proposal, t):
        """Parameters a fraction ``t`` of the way to ``proposal`` (rows stay distributions)."""
        components = params.components if "emissions" in self.frozen \
            else family.interpolate(params.components, proposal.components, t)
        if components is None:
            return None
        mix = lambda a, b: b if t == 1 else (1 - t) * a + t * b  # noqa: E731
        return HMMParams(mix(params.startprob, proposal.startprob),
                         mix(params.transmat, proposal.transmat), components)

    def log_prior(self, family, params):
        """log p(theta): the chain's Dirichlets plus the emissions' prior."""
        return self.log_prior_chain(params) + family.log_prior(params.components)

    def log_prior_chain(self, params):
        """The Dirichlet log-densities of pi and A's rows without normalising constants."""
        return float(xlogy(self.startprob_prior - 1, params.startprob).sum()
                     + xlogy(self.transmat_prior - 1, params.transmat).sum())

    # ------------------------------------------------------------ the rest
    def sample(self, family, params, n_samples, rng, currstate=None):
        """``(X, states)``: a Markov chain of ``n_samples`` states (from ``currstate`` when
        given), then each row's emission drawn from its state's component."""
        u = rng.random(n_samples)
        states = np.empty(n_samples, dtype=np.intp)
        cdf_start, cdf_trans = np.cumsum(params.startprob), np.cumsum(params.transmat, axis=1)
        state = int((cdf_start > u[0]).argmax()) if currstate is None else int(currstate)
        for t in range(n_samples):
            if t > 0:
                state = int((cdf_trans[state] > u[t]).argmax())
            states[t] = state
        order = np.argsort(states, kind="stable")
        counts = np.bincount(states, minlength=params.n_components)
        X = np.empty((n_samples, params.components.n_features))
        X[order] = family.sample(params.components, counts, rng)
        return X, states

    def n_parameters(self, family, n_features, n_components):
        """Free parameters: K - 1 start and K (K - 1) transition probabilities plus the
        emissions' (frozen ones too, as for mixtures' weights and in hmmlearn)."""
        k = n_components
        return int(k - 1 + k * (k - 1) + family.n_parameters(n_features, n_components))


def _normalized(p):
    """Rows (or the vector) of ``p`` divided by their sums; all-zero rows stay zero."""
    sums = p.sum(axis=-1, keepdims=True)
    return p / np.where(sums == 0, 1.0, sums)


class SequenceWork:
    """Caller-owned buffers of an E-step over blocks of at most ``rows`` rows and ``n_seq``
    sequences: the family's workspace and the forward-backward frame, posteriors and slots.
    ``empty(name, shape)``, when given, supplies the (rows, K) and (rows,) float64 arrays (a
    caller keeping them from pass to pass)."""

    def __init__(self, family, packed, rows, n_seq, chunk_size, n_threads, empty=None):
        k = packed.log_norm.shape[0]
        empty = empty or (lambda name, shape: np.empty(shape))
        self.family = family.workspace(packed.emission, chunk_size, n_threads,
                                       -(-rows // chunk_size))
        self.frame = empty("frame", (rows, k))
        self.gamma = empty("gamma", (rows, k))
        self.scale = empty("scale", (rows,))
        self.threads = np.empty((n_threads, fb.workspace_size(k)))
        self.slots = np.empty((n_seq, 1 + chain_size(k)))


def emission_log_densities(family, packed, X, chunk_size, n_threads, work, missing=None,
                           labels=None):
    """log p(x_t | z_t = k) of a block (n, K), in ``work.frame``; rows marked ``missing``
    (all NaN) get density one (log 0): the chain runs through; states no path reaches get
    density zero. A row labelled with state
    ``labels[t] >= 0`` keeps only that state's density (the others get zero, log -inf), so
    forward-backward clamps its state and computes log p(x, labelled states)."""
    frame = work.frame[:X.shape[0]]
    family.log_density_block(packed.emission, X, chunk_size, n_threads, work.family, frame)
    if missing is not None:
        frame[missing] = 0.0
    if not packed.live.all():  # states no path reaches (see reachable)
        frame[:, ~packed.live] = -np.inf
    if labels is not None:
        rows = np.flatnonzero(labels >= 0)
        if rows.size:
            other = np.arange(frame.shape[1]) != labels[rows, None]
            frame[rows[:, None], np.arange(frame.shape[1])] = np.where(other, -np.inf,
                                                                        frame[rows])
    return frame


def posteriors_block(family, packed, X, bounds, chunk_size, n_threads, work, chain, seq_ll,
                     missing=None, labels=None):
    """Forward-backward over a block of whole sequences: the posteriors (n, K), a view of
    ``work.gamma``; adds ``[log p, start counts, transition counts]`` into ``chain``."""
    n = X.shape[0]
    frame = emission_log_densities(family, packed, X, chunk_size, n_threads, work, missing,
                                   labels)
    gamma = work.gamma[:n]
    fb.forward_backward(frame, bounds, packed.startprob, packed.transmat, n_threads, gamma,
                        work.scale[:n], work.threads, work.slots, chain, seq_ll)
    return gamma


def emission_statistics(family, packed, X, gamma, missing, chunk_size, n_threads, work, stats,
                        worst, row_offset):
    """Add the family's statistics of a block under the posteriors ``gamma`` into ``stats``
    (the family's part of the vector); rows marked ``missing`` add nothing."""
    k = packed.log_norm.shape[0]
    weights = None if missing is None else np.where(missing, 0.0, 1.0)
    family.fit_block(packed.emission, X, weights, gamma, True, chunk_size, n_threads,
                     work.family, stats[:stats.size - chain_size(k)], worst, row_offset)


def viterbi_block(family, packed, X, bounds, chunk_size, n_threads, work, states, missing=None,
                  labels=None):
    """Most likely state paths of a block into ``states`` (n,); returns their summed log p."""
    frame = emission_log_densities(family, packed, X, chunk_size, n_threads, work, missing,
                                   labels)
    log_start, log_trans = log_chain(packed)
    best = np.empty(bounds.size - 1)
    back = np.empty(frame.shape, dtype=np.intp)
    fb.viterbi(frame, bounds, log_start, log_trans, n_threads, back, work.threads, states, best)
    return float(best.sum())


def log_chain(packed):
    """``(log startprob, log transmat)``, -inf where a start or transition is forbidden."""
    with np.errstate(divide="ignore"):
        return np.log(packed.startprob), np.log(packed.transmat)
