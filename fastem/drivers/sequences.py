"""The sequence driver: a local data source cut into sequences, for hidden Markov models.

Passes run over blocks of whole sequences (``fastem.data.iter_sequence_blocks``): in a block the
family's kernels give the emission log-densities and statistics (chunks over threads) and
forward-backward or Viterbi runs over the sequences (sequences over threads), all reduced in a
fixed order, so results are bitwise identical for any ``n_threads``. A sequence longer than a
block is held whole: its (T, K) messages are in memory.
"""
import numpy as np

from .. import data
from .._config import single_threaded_blas
from ..latent import hmm
from .local import LocalDriver


class SequenceDriver(LocalDriver):
    """A :class:`~fastem.drivers.local.LocalDriver` whose passes follow ``lengths``."""

    def __init__(self, X, lengths, chunk_size=None, n_threads=None, progress=None):
        super().__init__(X, None, chunk_size, n_threads, progress)
        self.lengths = data.check_lengths(lengths, self.n_samples)

    def _blocks(self, family, packed, bar, block_chunks=64):
        """``(chunk size, work, iterator over (start, block, bounds))`` for one pass: blocks
        of about ``block_chunks`` chunks of whole sequences, and buffers for the largest."""
        k = packed.log_norm.shape[0]
        chunk = self._chunk(k)
        block_rows = block_chunks * chunk
        # the largest block: block_rows at most, unless one sequence is longer
        rows = max(min(block_rows, self.n_samples), int(self.lengths.max()))
        n_seq = min(self.lengths.size, rows)  # sequences have at least one row each
        work = hmm.SequenceWork(family, packed, rows, n_seq, chunk, self.n_threads)
        return chunk, work, data.iter_sequence_blocks(self.X, self.lengths, block_rows,
                                                      packed.dtype, bar)

    def accumulate(self, family, packed):
        """One E-step pass: the statistics vector (the family's, then the chain's counts) and
        [lowest sequence log-likelihood, that sequence's first row]."""
        k = packed.log_norm.shape[0]
        stats = np.zeros(family.stats_size(packed.emission) + hmm.chain_size(k))
        worst = np.array([np.inf, -1.0])
        with single_threaded_blas(), self.bar("E-step") as bar:
            chunk, work, blocks = self._blocks(family, packed, bar)
            for start, block, bounds in blocks:
                hmm.fit_block(family, packed, block, bounds, chunk, self.n_threads, work, stats,
                              worst, start)
        return stats, worst

    def posteriors(self, family, packed):
        """``(log-likelihood per sequence, posteriors (n, K))``."""
        k = packed.log_norm.shape[0]
        gamma_all = np.empty((self.n_samples, k))
        seq_ll = np.empty(self.lengths.size)
        first = 0
        with single_threaded_blas(), self.bar("posteriors") as bar:
            chunk, work, blocks = self._blocks(family, packed, bar)
            for start, block, bounds in blocks:
                n_seq = bounds.size - 1
                chain = np.zeros(1 + hmm.chain_size(k))
                gamma = hmm.posteriors_block(family, packed, block, bounds, chunk,
                                             self.n_threads, work, chain,
                                             seq_ll[first:first + n_seq])
                gamma_all[start:start + block.shape[0]] = gamma
                first += n_seq
        return seq_ll, gamma_all

    def viterbi(self, family, packed):
        """``(summed log p(x, best path), most likely state of each row)``."""
        states = np.empty(self.n_samples, dtype=np.intp)
        total = 0.0
        with single_threaded_blas(), self.bar("decode") as bar:
            chunk, work, blocks = self._blocks(family, packed, bar)
            for start, block, bounds in blocks:
                total += hmm.viterbi_block(family, packed, block, bounds, chunk, self.n_threads,
                                           work, states[start:start + block.shape[0]])
        return total, states
