"""Lock-step EM: many fits advanced together, one pass over the data per iteration.

Every iteration packs each still-running fit, asks the driver for one pass serving them all
(``accumulate_many``: each block meets every fit's E-step while it is in cache), then runs each
fit's M-step, re-seeding and convergence rule through :func:`fastem.em.em_update` and
:func:`fastem.em.advance`, exactly as :func:`fastem.em.run_em` does. Fits that converge, reach
their ``max_iter`` or fail drop out, so the passes over the data number the longest fit's
iterations, not their sum. A fit that fails (e.g. a degenerate covariance) keeps its error and
stops alone.
"""
from dataclasses import dataclass

import numpy as np

from .em import EMResult, advance, em_update

FAILURES = (ValueError, ArithmeticError)  # numpy's LinAlgError is a ValueError


@dataclass
class Fit:
    """One EM run in progress: its latent structure, family, options and result so far."""

    latent: object
    family: object
    params: object
    rng: object
    tol: float
    max_iter: int
    m_step: str = "exact"
    m_step_iters: int = 1
    error: Exception = None

    def __post_init__(self):
        self.result = EMResult(self.params, -np.inf)

    @property
    def running(self):
        return (self.error is None and not self.result.converged
                and self.result.n_iter < self.max_iter)


def run_lockstep(fits, driver, callback=None):
    """Advance every fit of ``fits`` until it converges, reaches ``max_iter`` or fails (its
    ``error``); ``callback(n_passes, running)`` after every pass. Returns the passes made."""
    n_passes = 0
    running = [fit for fit in fits if fit.running]
    while running:
        ready = [(fit, packed) for fit in running
                 if (packed := pack(fit, driver)) is not None]
        if ready:
            results = driver.accumulate_many([(fit.family, packed) for fit, packed in ready])
            n_passes += 1
            for (fit, packed), (stats, worst) in zip(ready, results):
                step(fit, driver, packed, stats, worst)
        running = [fit for fit in running if fit.running]
        if callback is not None:
            callback(n_passes, running)
    return n_passes


def pack(fit, driver):
    """The fit's parameters packed for a pass, or None with ``fit.error`` set."""
    try:
        return fit.latent.pack(fit.family, fit.result.params, driver.dtype)
    except FAILURES as error:
        fit.error = error
        return None


def step(fit, driver, packed, stats, worst):
    """The rest of one iteration of ``fit`` after the shared pass (as in run_em)."""
    try:
        current, params = em_update(fit.latent, fit.family, driver, fit.result.params, packed,
                                    stats, worst, rng=fit.rng, n_iter=fit.result.n_iter + 1,
                                    m_step=fit.m_step, m_step_iters=fit.m_step_iters)
    except FAILURES as error:
        fit.error = error
        return
    fit.result, change = advance(fit.result, params, current)
    fit.result.converged = bool(abs(change) < fit.tol)
