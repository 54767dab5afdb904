"""The EM loop, written once for every family and driver.

Each iteration is one streamed E-step pass (log-likelihood and sufficient statistics of the
current parameters) followed by the M-step of the latent structure and its emission family
(exact, MAP or partial: see ``fastem.families.base`` and :func:`partial_m_step`). The loop is
duck-typed over a latent structure (``fastem.latent``), a family and a driver, and imports none
of them. The monitored objective, ``lower_bound``, is the weighted mean
log-likelihood per sample of the parameters *before* the M-step, exactly as in scikit-learn; with
a prior it is the log-posterior, (log-likelihood + log p(theta)) / total weight. EM, MAP-EM and
generalized EM all guarantee it never decreases (Dempster, Laird & Rubin 1977), except at an
iteration where an empty component is re-seeded, which is reported in a warning.
"""
import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._compat import also_sklearns
from .data import SourceChanged
from .frame import Statistics

MAX_HALVINGS = 30  # backtracking halves the step at most this often (2**-30 ~ 1e-9)


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the objective changed by less than ``tol``.

    Issued through :func:`convergence_warning`, so that it is also a
    ``sklearn.exceptions.ConvergenceWarning`` when scikit-learn is loaded."""


def convergence_warning():
    """The class to warn with: :class:`ConvergenceWarning`, also scikit-learn's when it is
    loaded (see :mod:`fastem._compat`)."""
    return also_sklearns(ConvergenceWarning, "sklearn.exceptions", "ConvergenceWarning")


@dataclass
class EMResult:
    params: object
    lower_bound: float = -np.inf
    lower_bounds: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during EM; ``result`` holds the last completed iteration."""

    def __init__(self, result):
        super().__init__(f"EM interrupted after {result.n_iter} completed iterations")
        self.result = result


def run_em(latent, family, driver, params, *, tol, max_iter, rng, lower_bound=-np.inf,
           callback=None, m_step="exact", m_step_iters=1, symmetric_start=False, rule=None):
    """Iterate E- and M-steps from ``params`` until the objective changes by less than ``tol``.

    ``latent`` (e.g. ``fastem.latent.mixture.Mixture``) owns what couples the ``family``'s
    components; ``params`` are its parameters. ``m_step="partial"`` replaces the exact (or MAP)
    M-step by ``m_step_iters`` Newton steps with backtracking (generalized EM).

    ``callback(result, change, seconds)`` is called after every iteration. A
    KeyboardInterrupt becomes :class:`FitInterrupted` carrying the last completed iteration.

    ``symmetric_start``: see :class:`StoppingRule`. ``rule``: another object whose
    ``done(change)`` says when to stop, after the callback (hidden Markov models ask their
    ``monitor_``).
    """
    result = EMResult(params, lower_bound)
    rule = StoppingRule(tol, symmetric_start) if rule is None else rule
    with keeping(lambda: result):
        for n_iter in range(1, max_iter + 1):
            tic = time.perf_counter()
            packed = latent.pack(family, params, driver.dtype)
            stats, worst = driver.accumulate(family, packed)
            current, params = em_update(latent, family, driver, params, packed, stats, worst,
                                        rng=rng, n_iter=n_iter, m_step=m_step,
                                        m_step_iters=m_step_iters)
            result, change = advance(result, params, current)
            if end_iteration(result, change, tic, callback, rule):
                break
    return result


@contextlib.contextmanager
def keeping(last_result):
    """Stopping a loop of iterations keeps the last completed one, ``last_result()``: Ctrl-C
    becomes :class:`FitInterrupted` carrying it, and a data file that shrank
    (:class:`~fastem.data.SourceChanged`) carries it to the estimator."""
    try:
        yield
    except KeyboardInterrupt:
        raise FitInterrupted(last_result()) from None
    except SourceChanged as exc:
        exc.result = last_result()
        raise


class StoppingRule:
    """EM's convergence rule: stop once the objective changed by less than ``tol``.

    ``symmetric_start``: the parameters start near a symmetric saddle (from near-uniform random
    responsibilities), where EM first moves away slowly, its changes growing each iteration;
    then it stops only once two changes are known and the last did not grow."""

    def __init__(self, tol, symmetric_start=False):
        self.tol, self.symmetric_start = tol, symmetric_start
        self.previous_change = np.nan  # the last finite change (NaN: none yet)

    def done(self, change):
        escaping = self.symmetric_start and not abs(change) <= self.previous_change
        self.previous_change = abs(change) if np.isfinite(change) else np.nan
        return bool(abs(change) < self.tol) and not escaping


def end_iteration(result, change, tic, callback, rule):
    """Report a completed iteration (started at ``time.perf_counter() == tic``) to
    ``callback(result, change, seconds)``; mark ``result`` converged and return True when the
    :class:`StoppingRule` ``rule`` says so."""
    if callback is not None:
        callback(result, change, time.perf_counter() - tic)
    result.converged = rule.done(change)
    return result.converged


def em_update(latent, family, driver, params, packed, stats, worst, *, rng, n_iter, m_step,
              m_step_iters):
    """The rest of one EM iteration once a pass with ``packed`` (the packing of ``params``)
    gave ``stats`` and ``worst``: ``(objective of params, parameters after the M-step)``, with
    empty components re-seeded. Shared by :func:`run_em` and the lock-step loop of
    ``fastem.lockstep``, which runs many candidates over one pass."""
    view = Statistics(stats, packed.log_norm.shape[0])
    current = (view.log_likelihood + latent.log_prior(family, params)) / view.total
    if not np.isfinite(current):
        raise ValueError(f"the log-likelihood became {current} at iteration {n_iter}"
                         + nonfinite_cause(int(worst[1]), driver))
    check_statistics(stats, driver.dtype)
    if m_step == "partial":
        params, lost = partial_m_step(latent, family, params, stats, packed, m_step_iters)
    else:
        params, lost = latent.m_step(family, stats, packed, params)
    if lost.size:
        params = reseed(latent, family, driver, params, lost, int(worst[1]), rng, n_iter)
    return current, params


def nonfinite_cause(row, driver):
    """Why the log-likelihood is not finite, naming ``row`` (the worst-fit row, or the first
    row of the worst sequence): a label (``driver.labels``) that the parameters cannot honour,
    or a row no component can emit."""
    labels = getattr(driver, "labels", None)
    if labels is not None and hasattr(driver, "lengths"):  # hidden Markov models
        return (f": the sequence starting at row {row} has zero likelihood given its labels "
                "(y): a labelled state cannot emit its row, or cannot be reached from the "
                "start and transition probabilities and the labels before it")
    label = int(np.asarray(labels[row])) if labels is not None and row >= 0 else -1
    if label >= 0:
        return (f": row {row} is labelled (y) with component {label}, whose weight or density "
                "there is zero (a label the initial or current parameters cannot honour): "
                "check the label, or start that component so that it can emit the row (e.g. "
                "a positive weights_init)")
    return (f" (row {row} has zero density under every component); scale the data or "
            "increase reg_covar")


def advance(result, params, current):
    """The result after one more iteration, and the change of the objective that the
    convergence rule (:class:`StoppingRule`) tests."""
    change = current - result.lower_bound
    return EMResult(params, current, result.lower_bounds + [current], result.n_iter + 1,
                    False), change


def check_statistics(stats, dtype):
    """Raise a clear ValueError when a pass's summed statistics (all but the log-likelihood,
    whose -inf is reported on its own) overflowed: finite but huge data would otherwise fail
    deep inside the M-step."""
    if not np.isfinite(stats[1:]).all():
        raise ValueError(f"X has values too large for {np.dtype(dtype).name} arithmetic (their "
                         "squares overflow); rescale the data")


def partial_m_step(latent, family, params, stats, packed, n_steps):
    """Generalized M-step: up to ``n_steps`` Newton steps with backtracking.

    A step is accepted only if the objective (J, plus log p(theta) under a prior) does not
    decrease, which is all generalized EM needs for a non-decreasing log-likelihood. Returns
    ``(params, lost)`` like the exact M-step; empty components keep their parameters.
    """
    objective = lambda candidate: latent.objective(family, candidate, stats, packed)  # noqa: E731
    value = objective(params)
    for _ in range(n_steps):
        proposal = latent.newton_step(family, params, stats, packed)
        if proposal is None:
            break
        accepted = backtrack(
            value, lambda t: latent.interpolate(family, params, proposal, t), objective)
        if accepted is None:
            break  # no ascent along this step: at the optimum to rounding
        params, value = accepted
    view = Statistics(stats, packed.log_norm.shape[0])
    return params, latent.lost_components(family, view)


def backtrack(value, candidate_at, objective):
    """Backtracking line search: the first of ``candidate_at(t)`` for t = 1, 1/2, 1/4, ...
    (at most MAX_HALVINGS) whose ``objective`` is at least ``value``, as ``(candidate, its
    value)``; None if there is none. ``candidate_at`` returns None outside the parameter space
    (e.g. a precision that is not positive definite)."""
    t = 1.0
    for _ in range(MAX_HALVINGS):
        candidate = candidate_at(t)
        if candidate is not None:
            candidate_value = objective(candidate)
            if candidate_value >= value:
                return candidate, candidate_value
        t *= 0.5
    return None


def reseed(latent, family, driver, params, lost, worst_row, rng, n_iter):
    """Put empty components back on data: the worst-fit row first, then distinct random rows,
    so no two coincide (redrawn on a repeat: ``choice(replace=False)`` would permute all n
    rows). A fit has at least n_components rows of positive weight, enough for every draw."""
    w = driver.sample_weight
    p = None if w is None else np.asarray(w / w.sum())  # never a zero-weight (omitted) row
    rows = [worst_row]
    while len(rows) < lost.size:
        row = int(rng.choice(driver.n_samples, p=p))
        if row not in rows:
            rows.append(row)
    warnings.warn(
        f"component(s) {lost.tolist()} lost all responsibility at iteration {n_iter} and were "
        f"re-seeded at data row(s) {rows}; the log-likelihood may drop at this iteration",
        RuntimeWarning,
        stacklevel=4,
    )
    return latent.reseed(family, params, lost, driver.rows(rows))
