"""Custom families: components written by the user in Python, compiled with Numba.

A family is given by a few plain functions. Two of them run over chunks of rows and should be
compiled with ``numba.njit(nogil=True, cache=True)`` (they then run without the GIL, on every
thread); the others see only the small per-component arrays and are ordinary NumPy code::

    log_density(X, params, out)    # X (n, D) chunk; out (n, K): out[i, k] = log p(x_i | z = k)
    statistics(X, resp, out)       # resp (n, K) weighted posteriors; out (K, S), zeroed: add
                                   # sum_i resp[i, k] * T_s(x_i) into out[k, s]
    m_step(s0, sums, params)       # s0 (K,), sums (K, S), params (previous, or None) -> params
                                   # (optionally a ``frozen`` keyword: see CustomFamily)

``params`` is a tuple (a ``typing.NamedTuple`` reads best, and Numba accepts it) of float64
arrays whose first axis is the component (e.g. ``mu (K, D)``, ``kappa (K, D)``). The latent
structure owns what couples the components (``fastem.latent.mixture``: the weights, their
M-step and Dirichlet prior): the engine adds its per-component constants (``log w_k``) to the
user's component log-densities, normalises each row (safe for rows that are all ``-inf``),
multiplies by the sample weights, adds the responsibility mass ``s0`` and calls ``statistics``.

Optional hooks:

- ``prepare(params) -> tuple``: what ``log_density`` receives instead of ``params``, computed once
  per iteration in NumPy (e.g. log-normalisers such as ``log I0(kappa)``, which Numba lacks, or
  natural parameters);
- ``from_rows(rows (m, D) float64) -> params`` for m components centred on data rows, used to
  re-seed empty components (default: the M-step of one-hot responsibilities on those rows, which
  must then give finite parameters);
- ``sample(params, k, n, rng) -> (n, D)``: draws from component ``k`` (for ``sample``);
- ``n_parameters``: free parameters of one component, an int or ``f(n_features)`` (for BIC);
- ``log_prior(params) -> float``: the log prior of the components for MAP-EM (the user's
  ``m_step`` then returns the MAP estimate); it is added to the monitored objective;
- ``objective(s0, sums, params) -> float`` and ``newton_step(s0, sums, params) -> params``:
  J(theta) of the components from the statistics, up to a constant, and one Newton (or other
  ascent) step on it, for generalized EM (``run_em(..., m_step="partial")``);
- ``invalid_rows(block) -> bool mask`` with ``error_message``: the family's support.

The engine (:meth:`CustomFamily.fit_block`) splits each block into chunks of at least
``min_chunk_rows`` rows (1024-4096: the Python-level calls of a chunk cost ~30 us), runs them on
``n_threads`` threads of a pool kept across calls (one task per thread, chunks handed out by a
shared counter), writes each chunk's statistics into its own slot and adds the slots in chunk
order, so a fit is bitwise identical for any number of threads. Rows with zero sample weight are
dropped from their chunk before the user's functions see them (so NaN rows omitted by
``nan_policy="omit"`` never reach them).

Numba is not imported here: the functions may be any callables with these signatures (plain
NumPy functions work, slowly and holding the GIL). Before the first pass of each dtype the
functions are tried on a few rows, and mistakes (wrong signature, writing past ``out``, leaving
entries unwritten, NaN) raise a ``ValueError`` that names the function. Do not compile with
``fastmath=True``: it turns rows whose log-densities are all ``-inf`` into NaN. Define the jitted
functions once, at module level, with ``cache=True``: a function made anew per call (a closure
or a factory) is compiled anew each time.
"""
import concurrent.futures
import itertools
import threading
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..frame import Statistics, empty_components
from .base import Family

# Rows per chunk, at least: enough to amortise the Python-level calls of a chunk (~30 us), few
# enough that the chunk's (rows, K) float64 log-densities stay in L2 (512 KiB at K <= 16).
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS, CHUNK_BYTES = 1024, 4096, 512 * 1024
# ... but a block is cut into at least this many chunks, so that threads share it (the driver's
# blocks can be as small as 4096 rows). Fixed by the block's length only: the same chunks for
# any number of threads.
CHUNKS_PER_BLOCK = 4
PROBE_ROWS = 4  # rows of the test chunk the user's functions are tried on
_GUARD = 4096  # sentinel elements (at least) after each test output, to catch writes past it
_SENTINEL = 1234.5678  # an addition to it (out[...] += v) changes it too


@dataclass
class CustomParams:
    """The user's component parameters (a tuple of arrays, first axis K), for data with
    ``n_features`` columns (None: unknown)."""

    components: Any
    n_features: Any = None

    @property
    def n_components(self):
        return np.shape(self.components[0])[0]

    def __iter__(self):
        """Unpacks as the user's tuple (``mu, kappa = params``)."""
        return iter(self.components)

    def __getattr__(self, name):
        """The user's fields read through (``params.mu`` is ``params.components.mu``)."""
        if name.startswith("__") or name == "components":  # copy/pickle probe before __init__
            raise AttributeError(name)
        return getattr(self.components, name)


class CustomPacked(NamedTuple):
    """A custom family's parameters laid out for a pass."""

    log_norm: np.ndarray  # (K,) added to the user's log-densities (log w_k, mixtures)
    args: Any  # what log_density receives: prepare(params) or the params tuple (None: init)
    dtype: np.dtype  # dtype of the data blocks
    n_features: Any = None  # columns of the data (None: unknown)


class _Workspace(NamedTuple):
    threads: list  # per thread: (log_prob (rows, K) float64, lse (rows,) float64)
    slots: np.ndarray  # (n_chunks, stats_size + 2) per-chunk statistics, lowest log p, its row
    rows: int  # rows per chunk
    log_norm_rows: np.ndarray  # (rows * K,) log_norm tiled: one flat add instead of K-wide rows
    ones: np.ndarray  # (rows,) for s0 = ones @ resp (a BLAS gemv; NumPy's axis-0 sum of a
    #                   K-wide array is ~10x slower)


class CustomFamily(Family):
    """A family of components from user functions (see the module documentation).

    Parameters
    ----------
    log_density : callable ``(X (n, D), args, out (n, K) float64) -> None``
        Writes the component log-densities ``log p(x_i | z = k)`` (without the weights).
    statistics : callable ``(X (n, D), resp (n, K) float64, out (K, S) float64) -> None``
        Adds ``sum_i resp[i, k] * T_s(x_i)`` into the zeroed ``out``; ``resp`` already includes
        the sample weights.
    m_step : callable ``(s0 (K,), sums (K, S), params or None) -> params``
        Component parameters (a tuple of arrays, first axis K) maximising J (or J + log prior).
        Entries of empty components (``s0 == 0``) may be anything: the engine keeps their
        previous parameters and re-seeds them. Runs with NumPy's floating-point warnings off.
    n_statistics : int
        S, the number of per-component sums ``statistics`` fills.
    prepare, from_rows, sample, n_parameters, log_prior, objective, newton_step, invalid_rows
        Optional hooks, see the module documentation.
    frozen : iterable of str
        Names of fields of the params NamedTuple that every M-step keeps:
        the engine puts their previous values back after the user's M-step. When the other
        fields' maximisers depend on a frozen one, give ``m_step`` (and ``newton_step``) a
        ``frozen`` keyword: they are then called with ``frozen=`` the set of frozen field names
        and should maximise over the others given ``params``' frozen values.
    min_chunk_rows : int or None
        Chunks hold ``max(driver chunk size, min_chunk_rows)`` rows; None: 512 KiB of
        log-densities, between 1024 and 4096 rows (4096 for K <= 16).
    error_message : str
        Says what is wrong with rows flagged by ``invalid_rows``.
    """

    def __init__(self, log_density, statistics, m_step, n_statistics, *, prepare=None,
                 from_rows=None, sample=None, n_parameters=None, log_prior=None, objective=None,
                 newton_step=None, invalid_rows=None, frozen=(),
                 min_chunk_rows=None, error_message="values outside the family's support"):
        for name, fn in (("log_density", log_density), ("statistics", statistics),
                         ("m_step", m_step)):
            if not callable(fn):
                raise TypeError(f"{name} must be a function, got {type(fn).__name__}")
        for name, fn in (("prepare", prepare), ("from_rows", from_rows), ("sample", sample),
                         ("log_prior", log_prior), ("objective", objective),
                         ("newton_step", newton_step), ("invalid_rows", invalid_rows)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function or None, got {type(fn).__name__}")
        if isinstance(n_statistics, bool) or not isinstance(n_statistics, (int, np.integer)) \
                or n_statistics < 0:
            raise ValueError(f"n_statistics must be a non-negative integer, got {n_statistics!r}")
        if min_chunk_rows is not None and (isinstance(min_chunk_rows, bool)
                                           or int(min_chunk_rows) < 1):
            raise ValueError(f"min_chunk_rows must be a positive integer or None, got "
                             f"{min_chunk_rows!r}")
        for name, fn in (("log_density", log_density), ("statistics", statistics)):
            _warn_if_holding_gil(name, fn)
        self.log_density, self.statistics, self.user_m_step = log_density, statistics, m_step
        self.n_statistics = int(n_statistics)
        self.prepare, self.from_rows, self.sample_component = prepare, from_rows, sample
        self.component_parameters = n_parameters
        self.user_log_prior, self.user_objective, self.user_newton_step = (
            log_prior, objective, newton_step)
        self.user_invalid_rows, self.error_message = invalid_rows, error_message
        self.frozen = frozenset(frozen)
        self.min_chunk_rows = None if min_chunk_rows is None else int(min_chunk_rows)
        self.prior = log_prior  # the components' prior (MAP-EM), or None
        self._checked = set()  # dtypes the kernels were tried on

    # ---------------------------------------------------------------- parameters
    def make_params(self, components, n_features=None):
        """:class:`CustomParams` from a component tuple, checked."""
        if not isinstance(components, tuple) or not components:
            raise ValueError("params must be a non-empty tuple (or NamedTuple) of arrays")
        k = np.shape(components[0])[0] if np.ndim(components[0]) else 0
        return CustomParams(self._check_components(components, k, "params"), n_features)

    @staticmethod
    def _check_components(components, k, source):
        if not isinstance(components, tuple):
            raise ValueError(f"{source} must return the component parameters as a tuple (or "
                             f"NamedTuple) of arrays, got {type(components).__name__}")
        checked = []
        for i, array in enumerate(components):
            array = np.asarray(array)
            if array.ndim < 1 or array.shape[0] != k:
                name = components._fields[i] if hasattr(components, "_fields") else f"[{i}]"
                raise ValueError(f"{source}: parameter {name} must have the {k} components along "
                                 f"its first axis, got shape {array.shape}")
            checked.append(array)
        return type(components)(*checked) if hasattr(components, "_fields") else tuple(checked)

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype, mass=None):
        """The user's kernel arguments (``prepare(params)`` or the params) and zero constants
        (the user's log-densities are complete; ``mass`` places no pivot here)."""
        log_norm = np.zeros(params.n_components)
        args = params.components
        if self.prepare is not None:
            with np.errstate(all="ignore"):
                args = self.prepare(args)
            if not isinstance(args, tuple):
                raise ValueError(f"prepare must return a tuple of arrays, got "
                                 f"{type(args).__name__}")
        return CustomPacked(log_norm, args, np.dtype(dtype), params.n_features)

    def pack_pivot(self, pivot, dtype):
        """A packing for passes with given responsibilities (only the pivot's shape is used)."""
        k, d = np.shape(pivot)
        return CustomPacked(np.zeros(k), None, np.dtype(dtype), d)

    def stats_size(self, packed):
        """[sum w log p, sum w, s0 (K), sums (K, S)]."""
        k = packed.log_norm.shape[0]
        return 2 + k + k * self.n_statistics

    def _rows(self, chunk_size, k):
        """Rows per chunk: the driver's chunk size, raised to ``min_chunk_rows``."""
        least = self.min_chunk_rows
        if least is None:
            least = int(np.clip(CHUNK_BYTES // (8 * k), MIN_CHUNK_ROWS, MAX_CHUNK_ROWS))
        return max(int(chunk_size), least)

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """Per-thread (log-density, log-sum-exp) buffers and one statistics slot per chunk."""
        k = packed.log_norm.shape[0]
        rows = self._rows(chunk_size, k)
        n_slots = n_chunks  # chunks are never smaller than the driver's: at most as many
        threads = [(np.empty((rows, k)), np.empty(rows)) for _ in range(n_threads)]
        return _Workspace(threads, np.empty((n_slots, self.stats_size(packed) + 2)), rows,
                          np.tile(packed.log_norm, rows), np.ones(rows))

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        """Add a block's log-likelihood and statistics into ``stats`` in chunk order, and update
        ``worst`` = [lowest log p(x_i), its row]; ``resp`` (n, K) replaces the E-step."""
        n, k, s = X.shape[0], packed.log_norm.shape[0], self.n_statistics
        if n == 0:
            return
        if resp is None:
            self._check_kernels(packed, X)
        elif with_stats:
            self._check_statistics(X, k)
        rows, size = _block_rows(work.rows, chunk_size, n), self.stats_size(packed)
        n_chunks = -(-n // rows)
        slots = work.slots
        if slots.shape[0] < n_chunks:
            raise ValueError("fastem: too few statistics slots for this block")

        def chunk(t, c):
            slot = slots[c]
            slot[:] = 0.0
            slot[size] = np.inf
            start = c * rows
            stop = min(start + rows, n)
            x, w = X[start:stop], None if weights is None else weights[start:stop]
            r = None if resp is None else resp[start:stop]
            lab = None if labels is None else labels[start:stop]
            index = None
            if w is not None:
                slot[1] = w.sum()
                if not w.all():  # zero-weight rows add nothing and are never shown to the user
                    index = np.flatnonzero(w)
                    x, w = _like(X[start + index], X), w[index]
                    r = None if r is None else r[index]
                    lab = None if lab is None else lab[index]
            else:
                slot[1] = stop - start
            m = x.shape[0]
            if m == 0:
                return
            logp, lse = work.threads[t][0][:m], work.threads[t][1][:m]
            if r is None:
                self.log_density(x, packed.args, logp)
                flat = logp.reshape(-1)  # a view: the buffer is C-contiguous
                flat += work.log_norm_rows[:m * k]
                if lab is not None:
                    clamp_labelled(logp, lab)
                _normalize(logp, lse)
                slot[0] = lse.sum() if w is None else w @ lse
                i = int(np.argmin(lse))
                slot[size] = lse[i]
                slot[size + 1] = start + (i if index is None else index[i])
            else:
                logp[:] = r
            if with_stats:
                if w is not None:
                    logp *= w[:, None]
                view = Statistics(slot[:size], k)
                np.dot(work.ones[:m], logp, out=view.s0)
                self.statistics(x, logp, view.family.reshape(k, s))

        _run_chunks(chunk, n_chunks, n_threads)
        for c in range(n_chunks):  # chunk order: the same sums for any number of threads
            stats += slots[c, :size]
            if slots[c, size] < worst[0]:
                worst[0] = slots[c, size]
                worst[1] = row_offset + slots[c, size + 1]

    def predict_block(self, packed, X, chunk_size, n_threads, work, log_prob, resp, labels):
        """Per-row log p(x), posteriors and labels (argmax of log w_k + log p(x | k))."""
        n = X.shape[0]
        if n == 0:
            return
        self._check_kernels(packed, X)
        rows = _block_rows(work.rows, chunk_size, n)

        def chunk(t, c):
            start = c * rows
            stop = min(start + rows, n)
            logp, lse = work.threads[t][0][:stop - start], work.threads[t][1][:stop - start]
            self.log_density(X[start:stop], packed.args, logp)
            flat = logp.reshape(-1)
            flat += work.log_norm_rows[:logp.size]
            if labels is not None:
                np.argmax(logp, axis=1, out=labels[start:stop])
            if log_prob is not None or resp is not None:
                _normalize(logp, lse)
            if log_prob is not None:
                log_prob[start:stop] = lse
            if resp is not None:
                resp[start:stop] = logp

        _run_chunks(chunk, -(-n // rows), n_threads)

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        """Write ``packed.log_norm[k]`` plus the user's ``log_density`` of a block into ``out``
        (n, K) C-contiguous float64, chunk by chunk on the pool: the component log-densities
        when ``packed.log_norm`` is zero, log p(x_i, z = k) as packed by ``pack``."""
        n, k = X.shape[0], packed.log_norm.shape[0]
        if out.shape != (n, k) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous ({n}, {k}) array")
        if n == 0:
            return
        self._check_kernels(packed, X)
        rows = _block_rows(work.rows, chunk_size, n)

        def chunk(t, c):
            logp = out[c * rows:(c + 1) * rows]  # a C-contiguous view
            self.log_density(X[c * rows:(c + 1) * rows], packed.args, logp)
            flat = logp.reshape(-1)
            flat += work.log_norm_rows[:logp.size]

        _run_chunks(chunk, -(-n // rows), n_threads)

    def invalid_rows(self, block):
        """The user's ``invalid_rows`` mask, or no row."""
        if self.user_invalid_rows is None:
            return np.zeros(block.shape[0], dtype=bool)
        return np.asarray(self.user_invalid_rows(block), dtype=bool)

    # ------------------------------------------------------------ checking user code
    def _check_kernels(self, packed, X):
        """Try log_density (and statistics) on a few rows, once per dtype and parameter types."""
        key = ("log_density", X.dtype.str, X.flags.writeable, _type_key(packed.args))
        if key in self._checked:
            return
        k = packed.log_norm.shape[0]
        x = _probe_rows(X)
        m = x.shape[0]
        if m == 0:
            return  # no finite rows to try: the next block will
        shape = f"out has shape ({m}, {k}): rows x components"
        buf = np.full(m * k + max(_GUARD, 64 * m * k), np.nan)
        buf[m * k:] = _SENTINEL
        out = buf[:m * k].reshape(m, k)
        returned = _try(self.log_density, "log_density(X, params, out)", (x, packed.args, out),
                        m, shape)
        if np.any(buf[m * k:] != _SENTINEL):
            raise ValueError(f"log_density wrote past the end of out ({shape})")
        _try_python(self.log_density, "log_density", (x, packed.args, np.empty((m, k))), shape)
        if np.isnan(out).any():
            hint = " (it returned a value: write into out instead)" if returned is not None else ""
            raise ValueError(f"log_density left entries of out unwritten or wrote NaN{hint}; it "
                             f"must set out[i, k] = log p(x_i | z = k) for every row and "
                             f"component ({shape})")
        if np.any(out == np.inf):
            raise ValueError("log_density wrote +inf: log-densities must be finite or -inf")
        self._check_statistics(X, k)
        self._checked.add(key)

    def _check_statistics(self, X, k):
        key = ("statistics", X.dtype.str, X.flags.writeable, k)
        if key in self._checked:
            return
        x = _probe_rows(X)
        if x.shape[0] == 0:
            return
        m, s = x.shape[0], self.n_statistics
        resp = np.full((m, k), 1.0 / k)
        shape = f"resp has shape ({m}, {k}), out ({k}, {s}) = (components, n_statistics)"
        buf = np.zeros(k * s + max(_GUARD, 64 * k * (s + x.shape[1] + 1)))
        buf[k * s:] = _SENTINEL
        out = buf[:k * s].reshape(k, s)
        _try(self.statistics, "statistics(X, resp, out)", (x, resp, out), m, shape)
        if np.any(buf[k * s:] != _SENTINEL):
            raise ValueError(f"statistics wrote past the end of out ({shape}); is n_statistics "
                             f"right?")
        _try_python(self.statistics, "statistics", (x, resp, np.zeros((k, s))),
                    shape + "; is n_statistics right?")
        if np.isnan(out).any():
            raise ValueError(f"statistics wrote NaN into out ({shape})")
        self._checked.add(key)

    # ----------------------------------------------------------------- the M-step
    def _split(self, stats):
        k = stats.n_components
        return stats.s0, stats.family[:k * self.n_statistics].reshape(k, self.n_statistics)

    def m_step(self, stats, packed, params=None):
        """The user's component M-step. Empty components keep their parameters (or, at
        initialisation, whatever the user's M-step gave) and the latent structure re-seeds
        them."""
        s0, sums = self._split(stats)
        k = s0.shape[0]
        previous = None if params is None else params.components
        with np.errstate(all="ignore"):
            components = self.user_m_step(s0.copy(), sums.copy(), previous,
                                          **self._frozen_keyword(self.user_m_step))
        components = self._finish(components, previous, empty_components(s0), k, "m_step")
        return CustomParams(components, packed.n_features)

    def _frozen_keyword(self, fn):
        """``{"frozen": names}`` for user functions that take a ``frozen`` keyword."""
        return {"frozen": self.frozen} if self.frozen and _takes_frozen(fn) else {}

    def _finish(self, components, previous, lost, k, source):
        """Check the user's components; keep previous values for empty and frozen ones."""
        components = self._check_components(components, k, source)
        arrays = list(components)
        names = getattr(components, "_fields", ())
        frozen = self.frozen
        unknown = frozen - set(names)
        if unknown:
            raise ValueError(f"frozen names {sorted(unknown)} are not fields of the parameters "
                             f"{names or '(a plain tuple: use a NamedTuple to freeze fields)'}")
        if previous is not None:
            for i, name in enumerate(names or range(len(arrays))):
                if name in frozen:
                    arrays[i] = np.asarray(previous[i])
                elif lost.size:
                    arrays[i] = arrays[i].copy()
                    arrays[i][lost] = previous[i][lost]
        kept = np.ones(k, dtype=bool)
        kept[lost] = False
        for i, array in enumerate(arrays):
            if np.issubdtype(array.dtype, np.number) and not np.isfinite(array[kept]).all():
                name = names[i] if names else f"[{i}]"
                raise ValueError(f"{source} returned non-finite values in parameter {name} for "
                                 f"non-empty components")
        return type(components)(*arrays) if names else tuple(arrays)

    def objective(self, params, stats, packed):
        """The user's J(components) plus log p(theta)."""
        if self.user_objective is None:
            raise NotImplementedError("partial M-steps need objective= and newton_step= hooks")
        s0, sums = self._split(stats)
        value = float(self.user_objective(s0, sums, params.components)) + self.log_prior(params)
        return value if not np.isnan(value) else -np.inf  # NaN: outside the parameter space

    def newton_step(self, params, stats, packed):
        """The components by the user's ``newton_step``."""
        if self.user_newton_step is None:
            raise NotImplementedError("partial M-steps need objective= and newton_step= hooks")
        s0, sums = self._split(stats)
        with np.errstate(all="ignore"):
            components = self.user_newton_step(s0.copy(), sums.copy(), params.components,
                                               **self._frozen_keyword(self.user_newton_step))
        components = self._finish(components, params.components, empty_components(s0),
                                  s0.shape[0], "newton_step")
        return CustomParams(components, params.n_features)

    def interpolate(self, params, proposal, t):
        """Every array a fraction ``t`` of the way from ``params`` to ``proposal``."""
        mix = lambda a, b: (1 - t) * np.asarray(a) + t * np.asarray(b)  # noqa: E731
        arrays = [mix(a, b) for a, b in zip(params.components, proposal.components)]
        comps = params.components
        comps = type(comps)(*arrays) if hasattr(comps, "_fields") else tuple(arrays)
        return CustomParams(comps, params.n_features)

    def log_prior(self, params):
        """The user's ``log_prior`` of the components (0.0 without one)."""
        if self.user_log_prior is None:
            return 0.0
        return float(self.user_log_prior(params.components))

    # ------------------------------------------------------------------ the rest
    def reseed(self, params, lost, rows):
        """Put components ``lost`` on data ``rows`` (``from_rows``)."""
        rows = np.asarray(rows, dtype=np.float64)
        new = self._components_on_rows(rows)
        arrays = []
        for old, fresh in zip(params.components, new):
            array = np.array(old, copy=True)
            array[lost] = fresh
            arrays.append(array)
        comps = params.components
        comps = type(comps)(*arrays) if hasattr(comps, "_fields") else tuple(arrays)
        return CustomParams(comps, params.n_features)

    def _components_on_rows(self, rows):
        m = rows.shape[0]
        if self.from_rows is not None:
            return self._check_components(self.from_rows(rows), m, "from_rows")
        sums = np.zeros((m, self.n_statistics))
        self.statistics(rows, np.eye(m), sums)
        with np.errstate(all="ignore"):
            components = self._check_components(
                self.user_m_step(np.ones(m), sums, None), m, "m_step")
        for array in components:
            if np.issubdtype(np.asarray(array).dtype, np.number) and not np.isfinite(array).all():
                raise ValueError(
                    "the M-step of a single data row gave non-finite parameters; give "
                    "CustomFamily a from_rows(rows) hook that places components on data rows")
        return components

    def sample(self, params, counts, rng):
        """``counts[k]`` draws of each component by the user's ``sample``, in component order."""
        if self.sample_component is None:
            raise NotImplementedError("sampling needs a sample(params, k, n, rng) hook")
        parts = [np.asarray(self.sample_component(params.components, k, int(count), rng),
                            dtype=np.float64).reshape(int(count), -1)
                 for k, count in enumerate(counts)]
        return np.vstack(parts)

    def n_parameters(self, n_features, n_components):
        """K x (free parameters per component)."""
        per = self.component_parameters
        if per is None:
            raise NotImplementedError("BIC and AIC need the n_parameters hook")
        per = per(n_features) if callable(per) else per
        return int(n_components * per)


# -------------------------------------------------------------------- the engine
def clamp_labelled(logp, labels):
    """Labelled rows (``labels[i] >= 0``) keep only their component's log p(x_i, z = k): the
    normalisation then gives them a one-hot posterior (as ``_blocks.clamp_labelled``)."""
    rows = np.flatnonzero(labels >= 0)
    if rows.size:
        kept = logp[rows, labels[rows]]
        logp[rows] = -np.inf
        logp[rows, labels[rows]] = kept


def _block_rows(rows, chunk_size, n):
    """Rows per chunk in a block of ``n`` rows: ``rows``, or less so that the block makes at
    least CHUNKS_PER_BLOCK chunks, never below the driver's ``chunk_size``."""
    return max(int(chunk_size), min(rows, -(-n // CHUNKS_PER_BLOCK)))


def _normalize(logp, lse):
    """Rows of log-probabilities to posteriors in place, with their log-sum-exp (compiled)."""
    from .._kernels import logsumexp

    logsumexp.normalize_rows(logp, lse, logp.shape[0], 1)


_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(n_threads):
    """The shared thread pool, replaced by a larger one when more threads are asked for (the
    old one is not shut down: a pass running on another thread may still submit to it; its
    idle workers exit once it is garbage collected)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n_threads:
            _pool = concurrent.futures.ThreadPoolExecutor(n_threads,
                                                          thread_name_prefix="fastem-custom")
            _pool_size = n_threads
        return _pool


def _run_chunks(chunk, n_chunks, n_threads):
    """Call ``chunk(thread, c)`` for every chunk ``c``: one task per thread, chunks handed out
    in order by a shared counter (dynamic scheduling; ``next`` on it is atomic under the GIL).
    The Python counterpart of the compiled families' skeleton (``_kernels/_blocks.pyx``); why
    custom families do not run that one: docs/kernels.md."""
    n_tasks = min(n_threads, n_chunks)
    if n_tasks <= 1:
        for c in range(n_chunks):
            chunk(0, c)
        return
    counter = itertools.count()

    def task(t):
        for c in counter:
            if c >= n_chunks:
                return
            chunk(t, c)

    pool = _executor(n_tasks)
    futures = [pool.submit(task, t) for t in range(n_tasks)]
    for future in futures:
        future.result()


def _try(fn, call, args, m, shape):
    """Call a user function on a test chunk, turning any failure into a clear ValueError."""
    try:
        return fn(*args)
    except Exception as exc:
        hint = ""
        if isinstance(exc, ImportError) and hasattr(fn, "py_func"):
            hint = ("; Numba's cache for this function was written while its module had "
                    "another name: import the module under one name, or delete the *.nbi and "
                    "*.nbc files of this function in the __pycache__ next to its source")
        raise ValueError(f"{call} failed on a {m}-row test chunk of dtype {args[0].dtype} "
                         f"({shape}): {type(exc).__name__}: {exc}{hint}") from exc


def _try_python(fn, name, args, shape):
    """Run a Numba function's Python source on the test chunk, where NumPy checks every index
    (compiled code does not): an IndexError there means the compiled code writes out of bounds.
    Other errors of the Python version are ignored (the compiled call already succeeded)."""
    py_func = getattr(fn, "py_func", None)
    if py_func is None:
        return
    try:
        with np.errstate(all="ignore"):
            py_func(*args)
    except IndexError as exc:
        raise ValueError(f"{name} indexes out of bounds ({shape}): IndexError: {exc}") from exc
    except Exception:  # noqa: BLE001 - Numba-only constructs; the compiled call worked
        pass


def _takes_frozen(fn):
    """Whether ``fn`` accepts a ``frozen`` keyword (explicitly or through ``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "frozen" or p.kind is p.VAR_KEYWORD for p in parameters)


def _like(x, X):
    """``x`` read-only if ``X`` is: Numba compiles a separate version for read-only arrays (a
    memory-mapped file), and every version must be compiled (and tried) before threads run."""
    if not X.flags.writeable:
        x.setflags(write=False)
    return x


def _probe_rows(X):
    """A few finite rows of a block to try the user's functions on (C-contiguous, read-only
    if the block is)."""
    head = np.asarray(X[:64 * PROBE_ROWS])
    return _like(np.ascontiguousarray(head[np.isfinite(head).all(axis=1)][:PROBE_ROWS]), X)


def _type_key(args):
    """What the compiled specialisation of log_density depends on: the arguments' types."""
    if isinstance(args, tuple):
        return tuple(_type_key(a) for a in args)
    if isinstance(args, np.ndarray):
        return (args.dtype.str, args.ndim)
    return type(args).__name__


def _warn_if_holding_gil(name, fn):
    """Warn when a Numba-compiled chunk function keeps the GIL (threads then take turns)."""
    if type(fn).__module__.split(".")[0] == "numba" and hasattr(fn, "targetoptions"):
        if not fn.targetoptions.get("nogil", False):
            warnings.warn(f"{name} is compiled without nogil=True: it holds the GIL, so "
                          f"threads cannot run it in parallel", UserWarning, stacklevel=3)
        if fn.targetoptions.get("fastmath", False):
            warnings.warn(f"{name} is compiled with fastmath: rows whose log-densities are all "
                          f"-inf may become NaN", UserWarning, stacklevel=3)
