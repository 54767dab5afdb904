"""The sequence driver: a local data source cut into sequences, for hidden Markov models.

Passes run over runs of whole sequences (``fastem.data.sequence_runs``): in a block the
family's kernels give the emission log-densities and statistics (chunks over threads) and
forward-backward or Viterbi runs over the sequences (sequences over threads), all reduced in a
fixed order, so results are bitwise identical for any ``n_threads``.

A sequence longer than a block is read in segments of a block's rows, in bounded memory
(O(block x K + T / block x K), never its T x K messages). Forward-backward is checkpointed: a
forward pass keeps only the normalised forward message at each segment's end (and the running
log-likelihood); a backward sweep from the last segment re-reads each segment, recomputes its
forward messages from its checkpoint, and runs the backward recursion from the beta carried
over from the segment after it, giving the segment's posteriors, its transition counts (those
into its first row included) and then its emission statistics. Viterbi is checkpointed the same
way: a forward pass keeps the deltas at segment ends; going back, each segment's back-pointers
are recomputed from its checkpoint and followed from the state chosen after it. Both repeat a
segment's operations exactly, so the messages, posteriors, counts and paths are bitwise those
of the whole sequence at once; only the emission statistics are added in another order (to
rounding). Each segment is read twice per pass and its emissions and forward pass computed
twice.

Threads over one long sequence: its segments go through a two-stage pipeline. One thread
reads the next segment and computes its emission log-densities (and, going back, recomputes
its forward messages from its checkpoint) while the other runs the recursion that depends on
the segment before (the forward pass, or the backward pass and the emission statistics) on the
current one; each stage gets half of ``n_threads`` for the family's kernels. The arithmetic is
that of one thread, in the same order, so results are bitwise identical for any ``n_threads``;
the gain is bounded by the longer stage (the recursions stay sequential). Parallel forward
passes over blocks with a prefix over block boundaries were not used: their K x K transfer
products cost K times the flops of the recursion (8x for K = 8), more than two threads win.
"""
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import data
from .._config import single_threaded_blas
from .._kernels import forward_backward as fb
from ..latent import hmm
from .local import LocalDriver

BLOCK_CHUNKS = 64  # chunks per block of whole sequences, and per segment of a longer one

Piece = namedtuple("Piece", "start block missing gamma work n_threads")
Piece.__doc__ = """Posteriors of a block or segment, with the buffers (``work``) and thread
count that the caller's kernels on it use."""


class SequenceDriver(LocalDriver):
    """A :class:`~fastem.drivers.local.LocalDriver` whose passes follow ``lengths``.

    ``block_rows``: rows per block (None: ``BLOCK_CHUNKS`` chunks); a longer sequence is
    streamed in segments of that many rows. After :meth:`check_missing` or
    :meth:`mark_missing`, rows that are all NaN are missing observations; ``labels`` (intp,
    -1 unlabelled), when set, clamp the states of labelled rows in every pass."""

    def __init__(self, X, lengths, chunk_size=None, n_threads=None, progress=None,
                 block_rows=None):
        super().__init__(X, None, chunk_size, n_threads, progress)
        self.lengths = data.check_lengths(lengths, self.n_samples)
        if block_rows is not None and (isinstance(block_rows, bool) or int(block_rows) < 1):
            raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
        self.block_rows = block_rows
        self.filler = None  # a fully observed row, written over missing ones before a kernel
        self.marginal = False  # NaN entries go to a marginal family's kernels (mark_missing)

    def check_missing(self, family=None):
        """One pass under ``nan_policy="omit"``: rows that are all NaN become missing
        observations (counted in ``n_omitted``); ValueError at any other non-finite row or a
        row outside the ``family``'s support."""
        with self.bar("check") as bar:
            self.n_omitted, self.filler = data.check_missing(self.X, self.dtype, family=family,
                                                             bar=bar)

    def mark_missing(self, family=None, every_column=True):
        """One pass under ``nan_policy="marginalize"``: NaN entries are missing at random
        (passes hand them to the kernels of the marginal ``family``) and a row with no
        observed entry is a missing observation (counted in ``n_omitted``); ValueError at a
        row holding infinity or outside the ``family``'s support, or (``every_column``: a fit
        needs them all) a column never observed."""
        observed = np.zeros(self.n_features, dtype=np.int64)
        with self.bar("check") as bar:
            self.n_omitted = sum(int(empty.sum()) for _, empty in data.missing_rows(
                self.X, self.dtype, observed, family=family, bar=bar))
        if every_column:
            data.check_observed(observed)
        self.marginal = True
        return self.n_omitted

    def read(self, start, stop, dtype):
        """``(rows [start, stop) as the kernels read them, missing rows or None)``. Under
        "omit" missing rows hold a copy of an observed row (so every family's kernel reads
        valid values); under "marginalize" rows keep their NaN entries, and those with no
        observed entry are the missing ones."""
        block = data.read_rows(self.X, start, stop, dtype)
        if self.marginal:
            return block, data.empty_rows(block)
        if self.filler is None:
            return block, None
        missing = ~data.finite_rows(block)
        if not missing.any():
            return block, None
        block = np.array(block)  # never write into the source
        block[missing] = self.filler
        return block, missing

    def block_bounds(self, batch_size):
        """(start, stop) of the blocks of online EM: runs of whole sequences of at most
        ``batch_size`` rows, a longer sequence alone (``fastem.data.sequence_runs``)."""
        return [(start, stop) for start, stop, _ in data.sequence_runs(self.lengths, batch_size)]

    def block(self, start, stop):
        """A driver with the same options over the whole sequences in rows [start, stop)."""
        ends = np.cumsum(self.lengths)
        first, last = np.searchsorted(ends - self.lengths, start), np.searchsorted(ends, stop,
                                                                                  "right")
        driver = SequenceDriver(self.X[start:stop], self.lengths[first:last], self.chunk_size,
                                self.n_threads, self.progress, self.block_rows)
        driver.filler, driver.marginal = self.filler, self.marginal
        driver.labels = None if self.labels is None else self.labels[start:stop]
        return driver

    def row_labels(self, start, stop):
        """The labels of rows [start, stop) (intp, -1 unlabelled), or None without labels."""
        return data.block_labels(self.labels, start, stop - start)

    def _starts(self):
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]])

    # ------------------------------------------------------------ forward-backward
    def _posteriors(self, p, chain, seq_ll, bar, backward=True):
        """Yield a :class:`Piece` for each block of whole sequences, and for each segment of a
        longer sequence from its last (see the module docstring; with ``backward=False`` its
        segments yield nothing). Adds ``[log p, start counts, transition counts]`` into
        ``chain`` and each sequence's log p into ``seq_ll``."""
        first = 0
        for start, stop, bounds in data.sequence_runs(self.lengths, p.block_rows):
            n_seq = bounds.size - 1
            if stop - start > p.block_rows:
                yield from self._long_posteriors(p, start, stop, chain, seq_ll[first:first + 1],
                                                 bar, backward)
            else:
                block, missing = self.read(start, stop, p.packed.dtype)
                gamma = hmm.posteriors_block(p.family, p.packed, block, bounds, p.chunk,
                                             self.n_threads, p.work, chain,
                                             seq_ll[first:first + n_seq], missing,
                                             self.row_labels(start, stop))
                yield Piece(start, block, missing, gamma, p.work, self.n_threads)
                bar.update(stop - start)
            first += n_seq

    def _long_posteriors(self, p, start, stop, chain, seq_ll, bar, backward):
        """Checkpointed forward-backward of the sequence in rows [start, stop)."""
        parts = data.segments(start, stop, p.block_rows)
        packed = p.packed
        checkpoints = np.empty((len(parts), fb.message_size(p.k)))
        message, ll = np.empty(fb.message_size(p.k)), 0.0
        for s, (block, missing, frame, work) in enumerate(p.pipeline(parts, range(len(parts)))):
            checkpoints[s] = message
            n = frame.shape[0]
            ll = fb.forward_segment(frame, message, s == 0, packed.startprob, packed.transmat,
                                    work.gamma[:n], work.scale[:n])
            if ll == -np.inf:  # no state can emit a row: no statistics, zero posteriors
                break
        seq_ll[0] = ll
        chain[0] += ll
        if not backward:
            bar.update(stop - start)
            return

        def recompute(block, missing, frame, work, s):
            n = frame.shape[0]
            fb.forward_segment(frame, checkpoints[s].copy(), s == 0, packed.startprob,
                               packed.transmat, work.gamma[:n], work.scale[:n])

        counts, beta = np.zeros(chain.size - 1), np.ones(p.k)
        order = range(len(parts) - 1, -1, -1)
        for s, (block, missing, frame, work) in zip(order, p.pipeline(parts, order, recompute)):
            n = frame.shape[0]
            gamma = work.gamma[:n]
            if ll == -np.inf:
                gamma[:] = 0.0
            else:
                fb.backward_segment(frame, work.scale[:n], gamma,
                                    checkpoints[s] if s else np.empty(0), packed.transmat,
                                    beta, counts)
            yield Piece(parts[s][0], block, missing, gamma, work, p.stage_threads)
            bar.update(n)
        chain[1:] += counts

    def accumulate(self, family, packed):
        """One E-step pass: the statistics vector (the family's, then the chain's counts) and
        [lowest sequence log-likelihood, that sequence's first row]."""
        size = hmm.chain_size(packed.log_norm.shape[0])
        stats = np.zeros(family.stats_size(packed.emission) + size)
        worst = np.array([np.inf, -1.0])
        chain, seq_ll = np.zeros(1 + size), np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("E-step") as bar:
            p = _Pass(self, family, packed)
            for piece in self._posteriors(p, chain, seq_ll, bar):
                hmm.emission_statistics(family, packed, piece.block, piece.gamma, piece.missing,
                                        p.chunk, piece.n_threads, piece.work, stats, worst,
                                        piece.start)
        stats[0] += chain[0]
        stats[stats.size - size:] += chain[1:]
        low = int(np.argmin(seq_ll))
        if seq_ll[low] < worst[0]:
            worst[:] = seq_ll[low], self._starts()[low]
        return stats, worst

    def score(self, family, packed):
        """log p(X) of each sequence (a forward pass for sequences longer than a block)."""
        chain = np.zeros(1 + hmm.chain_size(packed.log_norm.shape[0]))
        seq_ll = np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("score") as bar:
            for _ in self._posteriors(_Pass(self, family, packed), chain, seq_ll, bar,
                                      backward=False):
                pass
        return seq_ll

    def posteriors(self, family, packed, consume):
        """Log-likelihood of each sequence; ``consume(start, posteriors)`` receives the
        posteriors of each block or segment (a buffer reused by the next one)."""
        chain = np.zeros(1 + hmm.chain_size(packed.log_norm.shape[0]))
        seq_ll = np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("posteriors") as bar:
            for piece in self._posteriors(_Pass(self, family, packed), chain, seq_ll, bar):
                consume(piece.start, piece.gamma)
        return seq_ll

    # ------------------------------------------------------------ Viterbi
    def viterbi(self, family, packed, states):
        """Summed log p(x, best path); the most likely state of each row into ``states``."""
        total = 0.0
        with single_threaded_blas(), self.bar("decode") as bar:
            p = _Pass(self, family, packed)
            for start, stop, bounds in data.sequence_runs(self.lengths, p.block_rows):
                if stop - start > p.block_rows:
                    total += self._long_viterbi(p, start, stop, states)
                else:
                    block, missing = self.read(start, stop, packed.dtype)
                    total += hmm.viterbi_block(family, packed, block, bounds, p.chunk,
                                               self.n_threads, p.work, states[start:stop],
                                               missing, self.row_labels(start, stop))
                bar.update(stop - start)
        return total

    def _long_viterbi(self, p, start, stop, states):
        """Checkpointed Viterbi of the sequence in rows [start, stop); returns its best
        log p(x, path)."""
        log_start, log_trans = hmm.log_chain(p.packed)
        parts = data.segments(start, stop, p.block_rows)
        checkpoints = np.empty((len(parts), p.k))
        backs = {id(work): np.empty((p.block_rows, p.k), dtype=np.intp) for work in p.stages}

        def recursion(block, missing, frame, work, s, delta=None):
            delta = checkpoints[s].copy() if delta is None else delta
            fb.viterbi_segment(frame, delta, s == 0, log_start, log_trans,
                               backs[id(work)][:frame.shape[0]])

        delta = np.empty(p.k)
        for s, piece in enumerate(p.pipeline(parts, range(len(parts)))):
            checkpoints[s] = delta
            recursion(*piece, s, delta)
        state = int(np.argmax(delta))  # the first maximum, as the kernel's
        order = range(len(parts) - 1, -1, -1)
        for s, (_, _, frame, work) in zip(order, p.pipeline(parts, order, recursion)):
            a, b = parts[s]
            state = fb.viterbi_backtrack(backs[id(work)][:b - a], state, states[a:b])
        return float(delta.max())


class _Pass:
    """What one pass needs: the family and packing, chunk size, block rows, buffers for blocks
    of whole sequences (``work``), and for the segments of a longer sequence one set of
    buffers per stage of the pipeline (``stages``, made on first use)."""

    def __init__(self, driver, family, packed):
        self.driver, self.family, self.packed = driver, family, packed
        self.k = packed.log_norm.shape[0]
        self.chunk = driver._chunk(self.k)
        self.block_rows = driver.block_rows or BLOCK_CHUNKS * self.chunk
        rows = min(self.block_rows, driver.n_samples)
        self.work = hmm.SequenceWork(family, packed, rows, min(driver.lengths.size, rows),
                                     self.chunk, driver.n_threads)
        self._stages = None

    @property
    def stages(self):
        """The buffers of the pipeline's stages: two when there are two threads to share."""
        if self._stages is None:
            if self.driver.n_threads < 2:
                self._stages = [self.work]
            else:
                self._stages = [hmm.SequenceWork(self.family, self.packed, self.block_rows, 1,
                                                 self.chunk, self.stage_threads)
                                for _ in range(2)]
        return self._stages

    @property
    def stage_threads(self):
        """Threads of each stage's kernels on a long sequence's segments."""
        n = self.driver.n_threads
        return n if n < 2 else n // 2

    def emissions(self, a, b, work):
        """Read rows [a, b) and compute their emission log-densities into ``work.frame``:
        ``(block, missing, frame, work)``."""
        block, missing = self.driver.read(a, b, self.packed.dtype)
        frame = hmm.emission_log_densities(self.family, self.packed, block, self.chunk,
                                           self.stage_threads, work, missing,
                                           self.driver.row_labels(a, b))
        return block, missing, frame, work

    def pipeline(self, parts, order, then=None):
        """Yield :meth:`emissions` of the segments ``parts[s]`` for ``s`` in ``order``, each
        followed by ``then(*result, s)`` when given; with two stages, the next segment's are
        computed on a second thread while the caller works on the current one (alternate
        segments use alternate buffers, so the two never share one)."""
        stages = self.stages

        def produce(i, s):
            result = self.emissions(*parts[s], stages[i % len(stages)])
            if then is not None:
                then(*result, s)
            return result

        order = list(order)
        if len(stages) < 2 or len(order) < 2:
            for i, s in enumerate(order):
                yield produce(i, s)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="fastem-segments") as pool:
            future = pool.submit(produce, 0, order[0])
            for i in range(len(order)):
                result = future.result()
                if i + 1 < len(order):
                    future = pool.submit(produce, i + 1, order[i + 1])
                yield result
