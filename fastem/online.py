"""Online EM: stepwise (Cappe & Moulines 2009; Liang & Klein 2009) and incremental (Neal &
Hinton 1998), over the same latent structure, family and driver objects as batch EM.

Both read the data block by block (``driver.block_bounds(batch_size)``: row ranges of
``batch_size`` rows, or of whole sequences for hidden Markov models; ``driver.block(start,
stop)``: a driver over one) and make an M-step after every block, instead of after every full
pass.

* **Stepwise**: the running statistics, kept per unit weight, become
  ``s <- (1 - rho_t) s + rho_t s_batch / total_batch`` with ``rho_t = (t + tau)^-kappa``,
  ``0.5 < kappa <= 1`` (``learning_decay``), ``tau >= 0`` (``learning_offset``), ``t`` the
  number of earlier updates; the first update takes ``rho = 1`` (there is nothing to keep yet).
* **Incremental**: one statistics vector per block is kept; a block's E-step replaces its own
  vector in the sum, then the M-step runs on the sum. Every step increases Neal & Hinton's free
  energy F(q, theta) = E_q log p(x, z | theta) + H(q), a lower bound of the log-likelihood.

Frames. Statistics of different parameters are added only after ``latent.rebase`` (the
family's ``rebase``, and the latent structure's frame-free counts kept) restated them in one
frame. The functions here take any latent structure (``fastem.latent``: mixtures and hidden
Markov chains alike) and driver, as ``fastem.em`` does. The stepwise running statistics are always held in the frame of the current
parameters' packing (they are rebased after each M-step, so each batch's statistics add to them
as they come); the incremental blocks' statistics are held in the frame of one reference
packing (the parameters the run started from), and their sum is rebased to the current packing
for each M-step.

MAP scaling. A prior's pseudo-counts stand against the data's counts: batch MAP-EM maximises
``sum_i w_i log p(x_i) + log p(theta)``. The statistics handed to the M-step are therefore
scaled to the *effective sample size*: the total weight of the data set in ``fit`` (so that the
fixed point is batch MAP-EM's: the running statistics estimate the per-unit-weight statistics
of the whole data), and, in ``partial_fit``, the total weight of all rows seen so far (the
posterior given the data seen). Maximum-likelihood M-steps are unchanged by the scale.
Incremental EM's first pass. Neal & Hinton's step replaces a block's statistics in a sum over
every block, which does not exist before the first pass. Summing the blocks as they come (and
scaling the partial sum up) keeps the statistics of the first blocks, made with the starting
parameters, until the second pass replaces them: on issue 14's 2e7-row benchmark that first pass
ended 0.73 nats per row below batch EM's optimum (full covariances). So the first pass of a run
is a stepwise pass over the blocks in file order, and its running statistics, shared out over
the blocks by weight, seed the sum that the following passes replace block by block with exact
ones; from the end of the second pass on, every block's statistics are its own E-step's and
each step increases the free energy.

Monitoring. A pass's objective is the weighted mean, over the pass, of each block's
log-likelihood under the parameters in force when the block was read (the online estimate; no
extra pass), plus log p(theta) / total weight under a prior, theta the parameters the pass
started from (with one block, batch EM's objective exactly); passes stop when it changes by
less than ``tol``, as batch EM's iterations do.
"""
import time
from dataclasses import dataclass

import numpy as np

from .em import (
    EMResult,
    StoppingRule,
    check_statistics,
    end_iteration,
    keeping,
    nonfinite_cause,
    reseed,
)
from .frame import Statistics

ALGORITHMS = ("batch", "incremental", "stepwise")


def check_schedule(learning_offset, learning_decay):
    """Raise ValueError unless ``tau >= 0`` and ``0.5 < kappa <= 1`` (Robbins-Monro)."""
    if not (_is_real(learning_offset) and learning_offset >= 0):
        raise ValueError(f"learning_offset (tau) must be a finite number >= 0, got "
                         f"{learning_offset!r}")
    if not (_is_real(learning_decay) and 0.5 < learning_decay <= 1.0):
        raise ValueError(f"learning_decay (kappa) must be in (0.5, 1], got {learning_decay!r}")


def check_batch_size(batch_size):
    """Raise ValueError unless ``batch_size`` is an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def _is_real(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and np.isfinite(value))


def learning_rate(n_steps, learning_offset, learning_decay):
    """rho_t = (t + tau)^-kappa for the update after ``n_steps`` earlier ones; 1 for the first
    (and never above 1)."""
    if n_steps == 0:
        return 1.0
    return min(1.0, float(n_steps + learning_offset) ** -learning_decay)


def block_bounds(n_samples, batch_size):
    """(start, stop) of consecutive blocks of ``batch_size`` rows."""
    return [(start, min(start + batch_size, n_samples))
            for start in range(0, n_samples, batch_size)]


@dataclass
class OnlineResult(EMResult):
    """:class:`~fastem.em.EMResult` of an online fit: ``n_iter`` counts passes, ``n_steps``
    M-steps (blocks); ``stats_nbytes`` is the memory held by statistics (incremental: one
    vector per block)."""

    n_steps: int = 0
    stats_nbytes: int = 0


def batch_estep(latent, family, driver, params, n_step, packed=None):
    """A block's E-step: ``(packed, statistics, worst)``, raising as batch EM does when the
    log-likelihood is not finite or the statistics overflow. ``packed``: the parameters'
    packing, when already made."""
    packed = latent.pack(family, params, driver.dtype) if packed is None else packed
    stats, worst = driver.accumulate(family, packed)
    view = Statistics(stats, packed.log_norm.shape[0])
    if not np.isfinite(view.log_likelihood):
        raise ValueError(f"the log-likelihood became {view.log_likelihood} at update {n_step} "
                         f"of a batch{nonfinite_cause(int(worst[1]), driver)}")
    check_statistics(stats, driver.dtype)
    return packed, stats, worst


def m_step_scaled(latent, family, driver, params, stats, packed, size, worst, rng, n_step,
                  reseed_empty=True):
    """The M-step on ``stats`` scaled to total weight ``size`` (MAP scaling, see the module),
    then empty components re-seeded on rows of the current block (``driver``) if
    ``reseed_empty``."""
    scaled = stats * (size / Statistics(stats, packed.log_norm.shape[0]).total)
    new, lost = latent.m_step(family, scaled, packed, params)
    if lost.size and reseed_empty:
        new = reseed(latent, family, driver, new, lost, int(worst[1]), rng, n_step)
    return new


@dataclass
class StepwiseState:
    """Where stepwise EM stands: the parameters, the running statistics per unit weight in the
    frame of the parameters' packing ``packed`` for data of ``dtype`` (None before the first
    update), the weight seen and the updates made. Replaced, never modified, by an update: a
    failed update leaves it as it was."""

    params: object
    stats: np.ndarray = None
    packed: object = None
    dtype: object = None
    seen: float = 0.0
    n_steps: int = 0


def stepwise_update(latent, family, driver, state, *, learning_offset, learning_decay, rng,
                    size=None):
    """One stepwise update over all rows of ``driver`` (one block): ``(new state, block
    log-likelihood, block weight)``. ``size``: the effective sample size the M-step's
    statistics are scaled to (None: the weight seen so far, as in ``partial_fit``)."""
    n_step = state.n_steps + 1
    reuse = state.packed if state.dtype == driver.dtype else None  # batches of another dtype
    packed, stats, worst = batch_estep(latent, family, driver, state.params, n_step, reuse)
    view = Statistics(stats, packed.log_norm.shape[0])
    total, ll = float(view.total), float(view.log_likelihood)
    if not total > 0:
        raise ValueError("the batch has no weight (sample_weight sums to zero, or every row "
                         "is missing): no data to update with")
    rho = learning_rate(state.n_steps, learning_offset, learning_decay)
    if state.stats is None:
        running = stats / total
    else:
        kept = state.stats if packed is state.packed else latent.rebase(family, state.stats,
                                                                        state.packed, packed)
        running = (1 - rho) * kept + rho * stats / total
    seen = state.seen + total
    params = m_step_scaled(latent, family, driver, state.params, running, packed,
                           seen if size is None else size, worst, rng, n_step)
    new_packed = latent.pack(family, params, driver.dtype)
    running = latent.rebase(family, running, packed, new_packed)
    return StepwiseState(params, running, new_packed, driver.dtype, seen, n_step), ll, total


class IncrementalStatistics:
    """One statistics vector per block, in the frame of ``reference`` (a packing), and their
    sum; blocks not yet seen hold zeros."""

    def __init__(self, reference, n_blocks, size):
        self.reference = reference
        self.blocks = np.zeros((n_blocks, size))
        self.seen = np.zeros(n_blocks, dtype=bool)
        self.total = np.zeros(size)

    def replace(self, index, latent, family, stats, packed):
        """Put a block's statistics (made with ``packed``) in place of its old ones; returns
        the sum restated in ``packed``'s frame."""
        restated = latent.rebase(family, stats, packed, self.reference)
        self.total += restated - self.blocks[index]
        self.blocks[index] = restated
        self.seen[index] = True
        return latent.rebase(family, self.total, self.reference, packed)

    def resum(self):
        """Recompute the sum in block order (no drift from many replacements)."""
        self.total = self.blocks.sum(axis=0)

    @classmethod
    def from_running(cls, state, weights):
        """Blocks' statistics seeded from a stepwise pass (``state``: its running statistics
        per unit weight, in the frame of ``state.packed``), each block's share its weight: the
        sum is the running estimate of the whole data's statistics."""
        kept = cls(state.packed, len(weights), state.stats.size)
        kept.blocks = np.outer(weights, state.stats)
        kept.seen = weights > 0
        kept.resum()
        return kept

    @property
    def nbytes(self):
        return self.blocks.nbytes


def incremental_update(latent, family, driver, params, index, kept, size, rng, n_step):
    """Neal & Hinton's step for block ``index`` (rows of ``driver``): its E-step replaces its
    statistics in ``kept``, then the M-step on the sum. Returns ``(params, block ll, block
    weight)``. Until every block has been seen, a component without data so far is not
    re-seeded (the blocks still to come may hold its data)."""
    packed, stats, worst = batch_estep(latent, family, driver, params, n_step)
    view = Statistics(stats, packed.log_norm.shape[0])
    summed = kept.replace(index, latent, family, stats, packed)
    params = m_step_scaled(latent, family, driver, params, summed, packed, size, worst, rng,
                           n_step, reseed_empty=bool(kept.seen.all()))
    return params, float(view.log_likelihood), float(view.total)


def run_online(latent, family, driver, params, *, algorithm, batch_size, tol, max_iter, rng,
               learning_offset=10.0, learning_decay=0.7, n_steps=0, lower_bound=-np.inf,
               callback=None, rule=None):
    """Passes of stepwise or incremental EM over the blocks of ``driver`` (its
    ``block_bounds(batch_size)``: rows, or whole sequences) until the pass objective changes by
    less than ``tol`` (or ``max_iter`` passes; ``rule``: another stopping rule, as for
    :func:`~fastem.em.run_em`).

    Stepwise visits the blocks in a new random order (from ``rng``) each pass and continues the
    schedule after ``n_steps`` earlier updates; incremental visits them in file order, its first
    pass a stepwise one that seeds the blocks' statistics (see the module).
    ``callback(result, change, seconds)`` runs after every pass. Ctrl-C raises
    :class:`~fastem.em.FitInterrupted` holding the parameters of the last completed update.
    """
    if algorithm not in ("incremental", "stepwise"):
        raise ValueError(f"algorithm must be 'incremental' or 'stepwise', got {algorithm!r}")
    check_batch_size(batch_size)
    check_schedule(learning_offset, learning_decay)
    bounds = driver.block_bounds(batch_size)
    size = float(driver.n_samples - driver.n_omitted if driver.sample_weight is None
                 else np.asarray(driver.sample_weight).sum())
    result = OnlineResult(params, lower_bound, n_steps=n_steps)
    rule = StoppingRule(tol) if rule is None else rule
    state = StepwiseState(params, n_steps=n_steps)
    kept = None
    with keeping(lambda: result):
        for n_iter in range(1, max_iter + 1):
            tic = time.perf_counter()
            ll, weight, at_start = 0.0, 0.0, params
            order = rng.permutation(len(bounds)) if algorithm == "stepwise" else range(len(bounds))
            block_weights = np.zeros(len(bounds))
            for index in order:
                block = driver.block(*bounds[index])
                if block.sample_weight is not None and not block.sample_weight.sum() > 0:
                    continue  # nothing to learn from (all rows omitted or weightless)
                if kept is None:
                    state, block_ll, block_weights[index] = stepwise_update(
                        latent, family, block, state, learning_offset=learning_offset,
                        learning_decay=learning_decay, rng=rng, size=size)
                    params = state.params
                else:
                    params, block_ll, block_weights[index] = incremental_update(
                        latent, family, block, params, index, kept, size, rng,
                        result.n_steps + 1)
                ll, weight = ll + block_ll, weight + block_weights[index]
                result = OnlineResult(params, result.lower_bound, result.lower_bounds,
                                      result.n_iter, False, result.n_steps + 1,
                                      0 if kept is None else kept.nbytes)
            if algorithm == "incremental" and kept is None and state.stats is not None:
                kept = IncrementalStatistics.from_running(state, block_weights)
            elif kept is not None:
                kept.resum()
            current = (ll + latent.log_prior(family, at_start)) / weight
            change = current - result.lower_bound
            result = OnlineResult(params, current, result.lower_bounds + [current], n_iter,
                                  False, result.n_steps, 0 if kept is None else kept.nbytes)
            if end_iteration(result, change, tic, callback, rule):
                break
    return result
