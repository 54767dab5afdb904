"""Multinomial components: each row is a vector of counts over ``d`` symbols (n trials), drawn
with component k's symbol probabilities p_k, as hmmlearn's ``MultinomialHMM`` defines them.

    log p(x | k) = log n! - sum_j log x_j! + sum_j x_j log p_kj      (0 log 0 = 0)

Statistics are s0_k = sum_i w_i r_ik and S_kj = sum_i w_i r_ik x_ij (``fastem/_kernels/
multinomial.pyx``); the M-step is p_kj = S_kj / sum_j S_kj, under an optional symmetric
Dirichlet(``prior``) its mode. A zero probability stays exactly zero: its log is -inf, so a row
that holds that symbol has zero posterior in that component.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..frame import empty_components
from .base import Family, xlogy


def _kernel():
    from .._kernels import multinomial

    return multinomial


@dataclass
class MultinomialParams:
    """Symbol probabilities of each component, (K, D) float64 rows summing to one."""

    probabilities: np.ndarray

    @property
    def n_components(self):
        return self.probabilities.shape[0]

    @property
    def n_features(self):
        return self.probabilities.shape[1]


class MultinomialPacked(NamedTuple):
    log_p: np.ndarray  # (D, K) log-probabilities, transposed; -inf for zeros
    log_norm: np.ndarray  # (K,) zeros, or a mixture's log-weights
    data_dtype: np.dtype

    @property
    def dtype(self):
        """Blocks are passed in their own dtype (float32 or float64)."""
        return self.data_dtype


class MultinomialFamily(Family):
    """Rows of non-negative integer counts; ``n_trials`` (None: any) is the count every row
    must sum to, checked with the support; ``prior``: a symmetric Dirichlet concentration
    (>= 1; None is maximum likelihood)."""

    def __init__(self, n_trials=None, prior=None):
        if prior is not None and not prior >= 1:
            raise ValueError(f"prior must be at least 1 (a Dirichlet concentration), got {prior}")
        self.n_trials = n_trials
        self.prior = prior

    @property
    def error_message(self):
        trials = "" if self.n_trials is None else f" summing to n_trials={self.n_trials}"
        return f"Symbol counts should be nonnegative integers{trials}"

    def invalid_rows(self, block):
        block = np.asarray(block)
        bad = ((block < 0) | (block != np.floor(block))).any(axis=1)
        if self.n_trials is not None:
            bad |= block.sum(axis=1) != self.n_trials
        return bad

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype, mass):
        with np.errstate(divide="ignore"):
            log_p = np.log(params.probabilities).T
        return MultinomialPacked(np.ascontiguousarray(log_p), np.zeros(params.n_components),
                                 np.dtype(dtype))

    def pack_pivot(self, pivot, dtype):
        k, d = pivot.shape
        return MultinomialPacked(np.zeros((d, k)), np.zeros(k), np.dtype(dtype))

    def stats_size(self, packed):
        d, k = packed.log_p.shape
        return _kernel().stats_size(d, k)

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        k = packed.log_norm.shape[0]
        return (np.empty((n_threads, _kernel().workspace_size(chunk_size, k))),
                np.empty((n_chunks, self.stats_size(packed) + 2)))

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        k = packed.log_norm.shape[0]
        _kernel().fit_block(
            X, _EMPTY_F64 if weights is None else weights,
            np.empty((0, k)) if resp is None else np.ascontiguousarray(resp, dtype=np.float64),
            packed.log_p, packed.log_norm, with_stats, chunk_size, n_threads, *work, stats,
            worst, row_offset, labels)

    def predict_block(self, packed, X, chunk_size, n_threads, work, log_prob, resp, labels):
        k = packed.log_norm.shape[0]
        _kernel().predict_block(
            X, packed.log_p, packed.log_norm, chunk_size, n_threads, work[0],
            _EMPTY_F64 if log_prob is None else log_prob,
            np.empty((0, k)) if resp is None else resp,
            _EMPTY_LABELS if labels is None else labels)

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        _kernel().log_density_block(X, packed.log_p, packed.log_norm, chunk_size, n_threads,
                                    work[0], out)

    # ----------------------------------------------------------------- the M-step
    def _counts(self, stats):
        k = stats.n_components
        return stats.family.reshape(k, -1)

    def _pseudo(self):
        return 0.0 if self.prior is None else self.prior - 1.0

    def m_step(self, stats, packed, params=None):
        """p_k = (S_k + prior - 1) / sum; a component without counts keeps its probabilities
        (at initialisation: the pooled ones)."""
        counts = np.maximum(self._counts(stats) + self._pseudo(), 0.0)
        sums = counts.sum(axis=1, keepdims=True)
        lost = np.union1d(empty_components(stats.s0), np.flatnonzero(sums[:, 0] == 0))
        probabilities = counts / np.where(sums == 0, 1.0, sums)
        if lost.size:
            pooled = counts.sum(axis=0) / max(counts.sum(), 1e-300)
            probabilities[lost] = pooled if params is None else params.probabilities[lost]
        return MultinomialParams(probabilities)

    def objective(self, params, stats, packed):
        """sum_kj S_kj log p_kj (+ log prior), the components' part of J up to a constant."""
        value = float(xlogy(self._counts(stats), params.probabilities).sum())
        return value + self.log_prior(params)

    def newton_step(self, params, stats, packed):
        return self.m_step(stats, packed, params)  # closed form: the step lands on the optimum

    def interpolate(self, params, proposal, t):
        return MultinomialParams((1 - t) * params.probabilities + t * proposal.probabilities)

    def log_prior(self, params):
        return float(xlogy(self._pseudo(), params.probabilities).sum())

    # ------------------------------------------------------------------ the rest
    def reseed(self, params, lost, rows):
        probabilities = params.probabilities.copy()
        smoothed = rows + 0.5
        probabilities[lost] = smoothed / smoothed.sum(axis=1, keepdims=True)
        return MultinomialParams(probabilities)

    def sample(self, params, counts, rng):
        """``counts[k]`` count vectors of ``n_trials`` draws from each component."""
        if self.n_trials is None:
            raise ValueError("For sampling, a single n_trials must be given")
        return np.vstack([rng.multinomial(int(self.n_trials), p, size=int(c))
                          for p, c in zip(params.probabilities, counts)]).astype(np.float64)

    def n_parameters(self, n_features, n_components):
        return int(n_components * (n_features - 1))


_EMPTY_F64 = np.empty(0)
_EMPTY_LABELS = np.empty(0, dtype=np.intp)
