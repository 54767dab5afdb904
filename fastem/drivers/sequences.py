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
"""
import numpy as np

from .. import data
from .._config import single_threaded_blas
from .._kernels import forward_backward as fb
from ..latent import hmm
from .local import LocalDriver

BLOCK_CHUNKS = 64  # chunks per block of whole sequences, and per segment of a longer one


class SequenceDriver(LocalDriver):
    """A :class:`~fastem.drivers.local.LocalDriver` whose passes follow ``lengths``.

    ``block_rows``: rows per block (None: ``BLOCK_CHUNKS`` chunks); a longer sequence is
    streamed in segments of that many rows. After :meth:`check_missing`, rows that are all
    NaN are missing observations."""

    def __init__(self, X, lengths, chunk_size=None, n_threads=None, progress=None,
                 block_rows=None):
        super().__init__(X, None, chunk_size, n_threads, progress)
        self.lengths = data.check_lengths(lengths, self.n_samples)
        if block_rows is not None and (isinstance(block_rows, bool) or int(block_rows) < 1):
            raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
        self.block_rows = block_rows
        self.filler = None  # a fully observed row, written over missing ones before a kernel

    def check_missing(self, family=None):
        """One pass under ``nan_policy="omit"``: rows that are all NaN become missing
        observations (counted in ``n_omitted``); ValueError at any other non-finite row or a
        row outside the ``family``'s support."""
        with self.bar("check") as bar:
            self.n_omitted, self.filler = data.check_missing(self.X, self.dtype, family=family,
                                                             bar=bar)

    # ------------------------------------------------------------ reading
    def _work(self, family, packed):
        """``(chunk size, rows per block, buffers)`` of one pass."""
        chunk = self._chunk(packed.log_norm.shape[0])
        block_rows = self.block_rows or BLOCK_CHUNKS * chunk
        rows = min(block_rows, self.n_samples)
        n_seq = min(self.lengths.size, rows)  # sequences have at least one row each
        return chunk, block_rows, hmm.SequenceWork(family, packed, rows, n_seq, chunk,
                                                   self.n_threads)

    def _read(self, start, stop, dtype):
        """``(rows [start, stop) as the kernels read them, missing rows or None)``: missing
        rows hold a copy of an observed row (so every family's kernel reads valid values)."""
        block = data.read_rows(self.X, start, stop, dtype)
        if self.filler is None:
            return block, None
        missing = ~data.finite_rows(block)
        if not missing.any():
            return block, None
        block = np.array(block)  # never write into the source
        block[missing] = self.filler
        return block, missing

    def _starts(self):
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]])

    # ------------------------------------------------------------ forward-backward
    def _posteriors(self, family, packed, chunk, block_rows, work, chain, seq_ll, bar,
                    backward=True):
        """Yield ``(start, block, missing, posteriors)``: each block of whole sequences, and
        each segment of a longer sequence from its last (see the module docstring; with
        ``backward=False`` its segments yield nothing). Adds ``[log p, start counts,
        transition counts]`` into ``chain`` and each sequence's log p into ``seq_ll``."""
        first = 0
        for start, stop, bounds in data.sequence_runs(self.lengths, block_rows):
            n_seq = bounds.size - 1
            if stop - start > block_rows:
                yield from self._long_posteriors(family, packed, start, stop, chunk, block_rows,
                                                 work, chain, seq_ll[first:first + 1], bar,
                                                 backward)
            else:
                block, missing = self._read(start, stop, packed.dtype)
                gamma = hmm.posteriors_block(family, packed, block, bounds, chunk,
                                             self.n_threads, work, chain,
                                             seq_ll[first:first + n_seq], missing)
                yield start, block, missing, gamma
                bar.update(stop - start)
            first += n_seq

    def _forward(self, family, packed, a, b, chunk, work, message, ll, first):
        """Read rows [a, b) of a sequence and run its forward pass from ``message``:
        ``(block, missing, log p so far)``, the forward messages in ``work.gamma``."""
        block, missing = self._read(a, b, packed.dtype)
        frame = hmm.emission_log_densities(family, packed, block, chunk, self.n_threads, work,
                                           missing)
        ll = fb.forward_segment(frame, message, first, packed.startprob, packed.transmat,
                                work.gamma[:b - a], work.scale[:b - a], ll)
        return block, missing, ll

    def _long_posteriors(self, family, packed, start, stop, chunk, block_rows, work, chain,
                         seq_ll, bar, backward):
        """Checkpointed forward-backward of the sequence in rows [start, stop)."""
        k = packed.log_norm.shape[0]
        parts = data.segments(start, stop, block_rows)
        checkpoints = np.empty((len(parts), k))
        message, ll = np.empty(k), 0.0
        for s, (a, b) in enumerate(parts):
            checkpoints[s] = message
            _, _, ll = self._forward(family, packed, a, b, chunk, work, message, ll, s == 0)
            if ll == -np.inf:  # no state can emit a row: no statistics, zero posteriors
                break
        seq_ll[0] = ll
        chain[0] += ll
        if not backward:
            bar.update(stop - start)
            return
        counts, beta = np.zeros(chain.size - 1), np.ones(k)
        for s in range(len(parts) - 1, -1, -1):
            a, b = parts[s]
            block, missing, _ = self._forward(family, packed, a, b, chunk, work,
                                              checkpoints[s].copy(), 0.0, s == 0)
            gamma = work.gamma[:b - a]
            if ll == -np.inf:
                gamma[:] = 0.0
            else:
                fb.backward_segment(work.frame[:b - a], work.scale[:b - a], gamma,
                                    checkpoints[s] if s else np.empty(0),
                                    packed.transmat, beta, counts)
            yield a, block, missing, gamma
            bar.update(b - a)
        chain[1:] += counts

    def accumulate(self, family, packed):
        """One E-step pass: the statistics vector (the family's, then the chain's counts) and
        [lowest sequence log-likelihood, that sequence's first row]."""
        k = packed.log_norm.shape[0]
        size = hmm.chain_size(k)
        stats = np.zeros(family.stats_size(packed.emission) + size)
        worst = np.array([np.inf, -1.0])
        chain, seq_ll = np.zeros(1 + size), np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("E-step") as bar:
            chunk, block_rows, work = self._work(family, packed)
            for start, block, missing, gamma in self._posteriors(
                    family, packed, chunk, block_rows, work, chain, seq_ll, bar):
                hmm.emission_statistics(family, packed, block, gamma, missing, chunk,
                                        self.n_threads, work, stats, worst, start)
        stats[0] += chain[0]
        stats[stats.size - size:] += chain[1:]
        low = int(np.argmin(seq_ll))
        if seq_ll[low] < worst[0]:
            worst[:] = seq_ll[low], self._starts()[low]
        return stats, worst

    def score(self, family, packed):
        """log p(X) of each sequence (a forward pass for sequences longer than a block)."""
        k = packed.log_norm.shape[0]
        chain, seq_ll = np.zeros(1 + hmm.chain_size(k)), np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("score") as bar:
            chunk, block_rows, work = self._work(family, packed)
            for _ in self._posteriors(family, packed, chunk, block_rows, work, chain, seq_ll,
                                      bar, backward=False):
                pass
        return seq_ll

    def posteriors(self, family, packed, consume):
        """Log-likelihood of each sequence; ``consume(start, posteriors)`` receives the
        posteriors of each block or segment (a buffer reused by the next one)."""
        k = packed.log_norm.shape[0]
        chain, seq_ll = np.zeros(1 + hmm.chain_size(k)), np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("posteriors") as bar:
            chunk, block_rows, work = self._work(family, packed)
            for start, _, _, gamma in self._posteriors(family, packed, chunk, block_rows, work,
                                                       chain, seq_ll, bar):
                consume(start, gamma)
        return seq_ll

    # ------------------------------------------------------------ Viterbi
    def viterbi(self, family, packed, states):
        """Summed log p(x, best path); the most likely state of each row into ``states``."""
        total = 0.0
        with single_threaded_blas(), self.bar("decode") as bar:
            chunk, block_rows, work = self._work(family, packed)
            for start, stop, bounds in data.sequence_runs(self.lengths, block_rows):
                if stop - start > block_rows:
                    total += self._long_viterbi(family, packed, start, stop, chunk, block_rows,
                                                work, states)
                else:
                    block, missing = self._read(start, stop, packed.dtype)
                    total += hmm.viterbi_block(family, packed, block, bounds, chunk,
                                               self.n_threads, work, states[start:stop],
                                               missing)
                bar.update(stop - start)
        return total

    def _long_viterbi(self, family, packed, start, stop, chunk, block_rows, work, states):
        """Checkpointed Viterbi of the sequence in rows [start, stop); returns its best
        log p(x, path)."""
        k = packed.log_norm.shape[0]
        log_start, log_trans = hmm.log_chain(packed)
        parts = data.segments(start, stop, block_rows)
        checkpoints = np.empty((len(parts), k))
        back = np.empty((min(block_rows, stop - start), k), dtype=np.intp)

        def recursion(s, delta):
            a, b = parts[s]
            block, missing = self._read(a, b, packed.dtype)
            frame = hmm.emission_log_densities(family, packed, block, chunk, self.n_threads,
                                               work, missing)
            fb.viterbi_segment(frame, delta, s == 0, log_start, log_trans, back[:b - a])

        delta = np.empty(k)
        for s in range(len(parts)):
            checkpoints[s] = delta
            recursion(s, delta)
        state = int(np.argmax(delta))  # the first maximum, as the kernel's
        for s in range(len(parts) - 1, -1, -1):
            a, b = parts[s]
            recursion(s, checkpoints[s].copy())
            state = fb.viterbi_backtrack(back[:b - a], state, states[a:b])
        return float(delta.max())
