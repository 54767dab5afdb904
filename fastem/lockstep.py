"""Lock-step EM: many fits advanced together, one pass over the data per iteration.

Every iteration packs each still-running fit, asks the driver for one pass serving them all
(``accumulate_many``: each block meets every fit's E-step while it is in cache), then runs each
fit's M-step, re-seeding and convergence rule through :func:`fastem.em.em_update`,
:func:`fastem.em.advance` and :class:`fastem.em.StoppingRule`, exactly as
:func:`fastem.em.run_em` does. Fits that converge, reach their ``max_iter`` or fail drop out,
so the passes over the data number the longest fit's iterations, not their sum. A fit that
fails (e.g. a degenerate covariance) keeps its error and stops alone.

Initialisations are shared too (:class:`SharedInit`): each fit initialises in its own thread,
the seeding sample, the k-means centres and each block's k-means labels are computed once for
generators in the same state (e.g. a full and a diag candidate of the same K and seed), and the
passes that turn initial responsibilities (k-means labels, random draws) into parameters wait
for each other and are served by one pass.
"""
import threading
from dataclasses import dataclass

import numpy as np

from .em import EMResult, StoppingRule, advance, em_update

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
    symmetric_start: bool = False
    error: Exception = None

    def __post_init__(self):
        self.result = EMResult(self.params, -np.inf)
        self.rule = StoppingRule(self.tol, self.symmetric_start)

    @property
    def running(self):
        return (self.error is None and not self.result.converged
                and self.result.n_iter < self.max_iter)


def run_lockstep(fits, driver, callback=None, grid=None):
    """Advance every fit of ``fits`` until it converges, reaches ``max_iter`` or fails (its
    ``error``); ``callback(n_passes, running)`` after every pass. ``grid``, when given, packs
    the fits and makes the passes (``pack(fit, driver)``, ``accumulate_many(jobs)``:
    :class:`fastem.grid.GridPasses`). Returns the passes made."""
    n_passes = 0
    running = [fit for fit in fits if fit.running]
    pack_fit = pack if grid is None else grid.pack
    accumulate_many = driver.accumulate_many if grid is None else grid.accumulate_many
    while running:
        ready = [(fit, packed) for fit in running
                 if (packed := pack_fit(fit, driver)) is not None]
        if ready:
            results = accumulate_many([(fit.family, packed) for fit, packed in ready])
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
    fit.result.converged = fit.rule.done(change)


class SharedInit:
    """The driver for initialising many fits at once, each in its own thread.

    :meth:`share` computes a draw once for generators in the same state and the same inputs
    (:meth:`sample_rows`: every fit of one integer ``random_state`` reads the same sample; the
    k-means centres and labeller of fits with the same K), and leaves each generator where its own draw
    would have left it. :meth:`accumulate` waits until every thread waits for a pass or has
    finished; then one pass (``accumulate_many``) serves them all. Anything else goes to the
    driver. Each fit's generator is its own, so results do not depend on thread timing.
    """

    def __init__(self, driver, grid=None):
        """``grid``, when given, makes the shared passes (``accumulate_many(jobs, resp_fns)``:
        :class:`fastem.grid.GridPasses`)."""
        self._driver, self._calls = driver, {}
        self._passes = driver if grid is None else grid
        self._sharing = threading.Lock()
        self._turn = threading.Condition()
        self._pending, self._busy = [], 0

    def __getattr__(self, name):
        return getattr(self._driver, name)

    def sample_rows(self, rng, size):
        return self.share(self._driver.sample_rows, rng=rng, size=size)

    def share(self, fn, *args, rng=None, **kwargs):
        """``fn(*args, **kwargs)`` (with ``rng=rng`` when given), computed once for the same
        ``fn``, inputs (arrays by identity) and state of ``rng`` (a ``RandomState``), and each
        generator left where its own call would have left it; arrays of the result are made
        read-only, as one copy serves every fit. Other threads asking meanwhile wait for it."""
        state = None
        if rng is not None:
            _, key, pos, has_gauss, gauss = rng.get_state()
            state = key.tobytes(), pos, has_gauss, gauss
        inputs = tuple(id(a) if isinstance(a, np.ndarray) else a for a in args)
        call = (fn, inputs, tuple(sorted(kwargs.items())), state)
        with self._sharing:
            entry = self._calls.get(call)
            first = entry is None
            if first:  # the inputs are kept, so that their ids are not reused
                entry = self._calls[call] = {"done": threading.Event(), "inputs": args}
        if first:
            try:
                result = fn(*args, **kwargs) if rng is None else fn(*args, rng=rng, **kwargs)
                for part in result if isinstance(result, tuple) else (result,):
                    if isinstance(part, np.ndarray):
                        part.flags.writeable = False
                entry["result"] = result, None if rng is None else rng.get_state()
            except BaseException as error:  # every fit asking gets it
                entry["result"] = error
            entry["done"].set()
        entry["done"].wait()
        if isinstance(entry["result"], BaseException):
            raise entry["result"]
        result, after = entry["result"]
        if rng is not None:
            rng.set_state(after)
        return result

    def accumulate(self, family, packed, with_stats=True, resp_fn=None, nan_policy=None):
        if not with_stats or nan_policy is not None:
            return self._driver.accumulate(family, packed, with_stats, resp_fn, nan_policy)
        request = {"job": (family, packed), "resp_fn": resp_fn}
        with self._turn:
            self._pending.append(request)
            self._busy -= 1
            self._turn.notify_all()
            while "result" not in request:
                self._turn.wait()
        if isinstance(request["result"], BaseException):
            raise request["result"]
        return request["result"]

    def run(self, starts):
        """``[start(self) for start in starts]``, each in its own thread, their passes shared;
        the first exception of a thread is raised here once all have finished."""
        results, errors = [None] * len(starts), []

        def work(i, start):
            try:
                results[i] = start(self)
            except BaseException as error:  # re-raised by the calling thread
                errors.append(error)
            finally:
                with self._turn:
                    self._busy -= 1
                    self._turn.notify_all()

        self._busy = len(starts)
        threads = [threading.Thread(target=work, args=item, daemon=True)
                   for item in enumerate(starts)]
        for thread in threads:
            thread.start()
        while self._serve():
            pass
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results

    def _serve(self):
        """Wait until no thread runs, then serve the waiting passes in one; False when none
        is waiting (every thread has finished)."""
        with self._turn:
            while self._busy > 0:
                self._turn.wait()
            batch, self._pending = self._pending, []
        if not batch:
            return False
        try:
            results = self._passes.accumulate_many([r["job"] for r in batch],
                                                   [r["resp_fn"] for r in batch])
        except BaseException as error:  # every waiting thread raises it
            results = [error] * len(batch)
        with self._turn:
            for request, result in zip(batch, results):
                request["result"] = result
            self._busy += len(batch)
            self._turn.notify_all()
        return True
