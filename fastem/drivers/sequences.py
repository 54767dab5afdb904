"""The sequence driver: a local data source cut into sequences, for hidden Markov models.

Passes run over runs of whole sequences (``fastem.data.sequence_runs``): in a block the
family's kernels give the emission log-densities and statistics (chunks over threads) and
forward-backward or Viterbi runs over the sequences (sequences over threads), all reduced in a
fixed order, so results are bitwise identical for any ``n_threads``.

A sequence longer than a block is read in segments of at most a block's rows, in bounded memory
(O(block x K + T / block x K), never its T x K messages), and its forward-backward runs from
both ends at once. It is cut at its middle row: the head (first half) is cut into segments from
its start, the tail from the middle row on.
- Phase 1: one thread runs the forward pass over the head, keeping only the forward message
  before each head segment (and the running log-likelihood); the other walks the tail from the
  end with the backward messages alone (``beta_segment``: self-normalised, they need no
  forward pass), keeping the message at the last row of each tail segment.
- Phase 2: the first thread walks the head's segments back, the second the tail's forward.
  Each segment re-reads its rows, recomputes its forward messages from the message before it
  (a checkpoint; for the tail's first segment the head's final message, for the next ones what
  the segment before left), and then runs the backward pass from the message at its last row
  (for the head's last segment the tail's phase-1 result, for the others what the segment
  after left, or a checkpoint), giving its posteriors, its transition counts (those into its
  first row included) and then its emission statistics.
- Kept segments: phase 2 starts with the segments phase 1 computed last (the head's last, the
  tail's first). Phase 1 keeps up to ``KEPT_HEAD`` of the head's (:class:`_Kept`): their
  scaled densities, forward messages and scales, so phase 2 only runs their backward pass; and
  up to ``KEPT_TAIL`` of the tail's: their scaled densities and shifts, so phase 2 skips their
  emissions (``forward_segment(..., scaled=True)``) but still runs their forward recursion.
  A kept tail segment saves less than a kept head segment, so the tail keeps more, which
  balances the two threads' phase 2 (D = K = 8: emissions ~2.2 ms and forward recursion
  ~0.9 ms per 65,536 rows, so 6 and 8). Memory stays O(block x K): ``block_rows`` x
  (``KEPT_HEAD`` x (2K + 1) + ``KEPT_TAIL`` x (K + 1)) doubles, 91 MB for 65,536-row segments
  and K = 8; where that exceeds ``KEPT_BUDGET_BYTES`` (K > 8 at 65,536 rows) both counts
  shrink in proportion (K = 16: 3 and 4). A kept segment gives bitwise what recomputing it
  gives.
Both threads do about the same work (each half's rows read twice, emissions computed twice but
for the kept segments, one recursion in phase 1, both in phase 2 but for the head's kept
segments), and with one thread the same calls run one after the other, so results are
bitwise identical for any ``n_threads``: each half adds its statistics
and counts into its own sums, and the head's are added before the tail's. The forward messages
and the log-likelihood (the tail's forward pass continues the head's) are bitwise those of the
whole sequence at once, and so are the backward messages (one step function, whichever loop
runs it) and the posteriors; counts and statistics are summed in another order (to rounding).

Scoring needs the forward pass only: its segments go through a two-stage pipeline (the next
segment's emissions computed on a second thread while this one runs the recursion). Viterbi is
checkpointed the same way: a forward pass keeps the deltas at segment ends; going back, each
segment's back-pointers are recomputed from its checkpoint and followed from the state chosen
after it. Viterbi stays sequential: its max-product has no backward recursion to start from
the end, and it is not part of an EM iteration.
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
KEPT_HEAD, KEPT_TAIL = 6, 8  # segments of a long sequence's halves kept for phase 2 (_Kept)
KEPT_BUDGET_BYTES = 96 << 20  # at most, for those segments: fewer of them for large K

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
        self._arrays = {}  # the passes' large buffers, kept from pass to pass (:meth:`_empty`)

    def _empty(self, name, shape):
        """An uninitialised float64 array of ``shape`` for the buffer ``name`` of a pass: the
        one the last pass used when the shape is the same. Fresh arrays of several MB cost a
        page fault per page (and the kernel's zeroing of it) at their first write, every pass:
        ~10 % of a pass over one long sequence on two threads. Passes over one driver run one
        at a time, so each name has one user."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape:
            array = self._arrays[name] = np.empty(shape)
        return array

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
    def _posteriors(self, p, chain, seq_ll, bar, consume, sink, fresh, merge):
        """Forward-backward over every sequence: ``consume(piece, sink)`` receives a
        :class:`Piece` for each block of whole sequences and each segment of a longer one (the
        two halves of a long sequence go to two ``fresh()`` sinks, possibly from two threads at
        once, and are then added by ``merge(sink, half)``, first half first: see the module
        docstring). Adds ``[log p, start counts, transition counts]`` into ``chain`` and each
        sequence's log p into ``seq_ll``."""
        first = 0
        for start, stop, bounds in data.sequence_runs(self.lengths, p.block_rows):
            n_seq = bounds.size - 1
            if stop - start > p.block_rows:
                self._long_posteriors(p, start, stop, chain, seq_ll[first:first + 1], bar,
                                      consume, sink, fresh, merge)
            else:
                block, missing = self.read(start, stop, p.packed.dtype)
                gamma = hmm.posteriors_block(p.family, p.packed, block, bounds, p.chunk,
                                             self.n_threads, p.work, chain,
                                             seq_ll[first:first + n_seq], missing,
                                             self.row_labels(start, stop))
                consume(Piece(start, block, missing, gamma, p.work, self.n_threads), sink)
                bar.update(stop - start)
            first += n_seq

    def _long_posteriors(self, p, start, stop, chain, seq_ll, bar, consume, sink, fresh,
                         merge):
        """Checkpointed forward-backward of the sequence in rows [start, stop) from both
        ends (the module docstring): phase 1 runs the forward pass over the first half and
        the backward messages alone over the second, from the end; phase 2 walks the first
        half's segments back and the second half's forward, each segment recomputing its
        forward messages (but those phase 1 kept) and then its backward ones between the
        messages it got."""
        packed, k = p.packed, p.k
        mid = start + (stop - start + 1) // 2
        head, tail = data.segments(start, mid, p.block_rows), data.segments(mid, stop,
                                                                             p.block_rows)
        work_head, work_tail = p.stages[0], p.stages[-1]
        forward_marks = np.empty((len(head), fb.message_size(k)))  # before each head segment
        backward_marks = np.empty((len(tail), k))  # at the last row of each tail segment
        message, message_mid = np.empty(fb.message_size(k)), np.ones(k)
        counts = np.zeros((2, k + k * k))
        kept = _Kept(p.block_rows, k, len(head), len(tail), self._empty)

        def forward_head():
            for s, (a, b) in enumerate(head):
                forward_marks[s] = message
                _, _, frame, work = p.emissions(a, b, work_head)
                n = b - a
                alpha, scale = kept.head_forward(s, n) or (work.gamma[:n], work.scale[:n])
                if fb.forward_segment(frame, message, s == 0, packed.startprob,
                                      packed.transmat, alpha, scale) == -np.inf:
                    return False
                kept.keep_head(s, frame)
            return True

        def backward_tail():
            for s in range(len(tail) - 1, -1, -1):
                a, b = tail[s]
                backward_marks[s] = message_mid
                _, _, frame, work = p.emissions(a, b, work_tail)
                shift = kept.tail_shift(s, b - a)
                fb.beta_segment(frame, packed.transmat, message_mid,
                                work.scale[:b - a] if shift is None else shift)
                kept.keep_tail(s, frame)
            return True

        def segment(a, b, work, prev, after, first, backward_message, counted, half, held):
            """One segment's forward messages from ``prev`` (the state after it into
            ``after``), then its posteriors and counts back from ``backward_message``: the
            log-likelihood up to its last row (None when ``held`` has its forward pass), or
            False if the sequence has no statistics. ``held``: what phase 1 kept of it
            (:class:`_Kept`), or None to recompute its emissions."""
            n, ll = b - a, None
            if held is None:
                block, missing, frame, _ = p.emissions(a, b, work)
                frame, alpha, scale, scaled = frame, work.gamma[:n], work.scale[:n], False
            else:
                block, missing = p.read(a, b)
                frame, alpha, scale, scaled = held
            if scaled is not None:  # (None: the forward pass kept from phase 1)
                after[:] = prev
                ll = fb.forward_segment(frame, after, first, packed.startprob, packed.transmat,
                                        alpha, scale, scaled)
            if ll == -np.inf or not fb.backward_segment(
                    frame, alpha, np.empty(0) if first else prev, packed.transmat,
                    backward_message, counted):
                return False
            consume(Piece(a, block, missing, alpha, work, p.stage_threads), half)
            return ll

        halves = [fresh(), fresh()]

        def back_head():
            backward_message, after = message_mid.copy(), np.empty(fb.message_size(k))
            for s in range(len(head) - 1, -1, -1):
                a, b = head[s]
                if segment(a, b, work_head, forward_marks[s], after, s == 0,
                           backward_message, counts[0], halves[0],
                           kept.head(s, b - a)) is False:
                    return False
                bar.update(b - a)
            return True

        def forward_tail():
            prev, after, ll = message, np.empty(fb.message_size(k)), None
            for s, (a, b) in enumerate(tail):
                ll = segment(a, b, work_tail, prev, after, False, backward_marks[s].copy(),
                             counts[1], halves[1], kept.tail(s, b - a, work_tail))
                if ll is False:
                    return None
                prev, after = after, prev
            return ll

        ok, ll = p.both(back_head, forward_tail) if all(p.both(forward_head, backward_tail)) \
            else (False, None)
        bar.update(stop - mid)
        if not ok or ll is None:  # zero likelihood, or beyond the scaled domain
            seq_ll[0] = -np.inf
            chain[0] += -np.inf
            self._zero_posteriors(p, head + tail, consume, sink)
            return
        seq_ll[0] = ll
        chain[0] += ll
        counts[1, k:] *= packed.transmat.ravel()  # the head's were multiplied at its start
        chain[1:] += counts[0]
        chain[1:] += counts[1]
        merge(sink, halves[0])
        merge(sink, halves[1])

    def _zero_posteriors(self, p, parts, consume, sink):
        """Hand ``consume`` zero posteriors for each segment of a sequence without
        statistics."""
        for a, b in parts:
            block, missing = self.read(a, b, p.packed.dtype)
            gamma = p.work.gamma[:b - a]
            gamma[:] = 0.0
            consume(Piece(a, block, missing, gamma, p.work, self.n_threads), sink)

    def accumulate(self, family, packed):
        """One E-step pass: the statistics vector (the family's, then the chain's counts) and
        [lowest sequence log-likelihood, that sequence's first row]."""
        size = hmm.chain_size(packed.log_norm.shape[0])
        stats = np.zeros(family.stats_size(packed.emission) + size)
        worst = np.array([np.inf, -1.0])
        chain, seq_ll = np.zeros(1 + size), np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("E-step") as bar:
            p = _Pass(self, family, packed)

            def consume(piece, sink):
                hmm.emission_statistics(family, packed, piece.block, piece.gamma, piece.missing,
                                        p.chunk, piece.n_threads, piece.work, sink[0], sink[1],
                                        piece.start)

            def merge(sink, half):
                sink[0][:] += half[0]
                if half[1][0] < sink[1][0]:
                    sink[1][:] = half[1]

            self._posteriors(p, chain, seq_ll, bar, consume, (stats, worst),
                             lambda: (np.zeros_like(stats), np.array([np.inf, -1.0])), merge)
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
            p = _Pass(self, family, packed)
            first = 0
            for start, stop, bounds in data.sequence_runs(self.lengths, p.block_rows):
                n_seq = bounds.size - 1
                if stop - start > p.block_rows:
                    seq_ll[first] = self._long_score(p, start, stop)
                else:
                    block, missing = self.read(start, stop, packed.dtype)
                    hmm.posteriors_block(family, packed, block, bounds, p.chunk,
                                         self.n_threads, p.work, chain,
                                         seq_ll[first:first + n_seq], missing,
                                         self.row_labels(start, stop))
                bar.update(stop - start)
                first += n_seq
        return seq_ll

    def _long_score(self, p, start, stop):
        """log p of the sequence in rows [start, stop): its forward pass over segments (the
        next segment's emissions computed on a second thread, :meth:`_Pass.pipeline`)."""
        parts = data.segments(start, stop, p.block_rows)
        message, ll = np.empty(fb.message_size(p.k)), 0.0
        for s, (_, _, frame, work) in enumerate(p.pipeline(parts, range(len(parts)))):
            n = frame.shape[0]
            ll = fb.forward_segment(frame, message, s == 0, p.packed.startprob,
                                    p.packed.transmat, work.gamma[:n], work.scale[:n])
            if ll == -np.inf:
                break
        return ll

    def posteriors(self, family, packed, consume):
        """Log-likelihood of each sequence; ``consume(start, posteriors)`` receives the
        posteriors of each block or segment (a buffer reused by the next one; the two halves
        of a sequence longer than a block may be handed over from two threads at once, for
        disjoint rows)."""
        chain = np.zeros(1 + hmm.chain_size(packed.log_norm.shape[0]))
        seq_ll = np.empty(self.lengths.size)
        with single_threaded_blas(), self.bar("posteriors") as bar:
            self._posteriors(_Pass(self, family, packed), chain, seq_ll, bar,
                             lambda piece, _: consume(piece.start, piece.gamma), None,
                             lambda: None, lambda sink, half: None)
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


class _Kept:
    """What phase 1 over a long sequence keeps of the segments that phase 2 reads first (the
    module docstring), so that phase 2 does not recompute them: the head's last segments'
    scaled densities, forward messages and inverse scales, and the tail's first segments'
    scaled densities and shifts; ``KEPT_HEAD`` and ``KEPT_TAIL`` segments at most (the module
    docstring gives the doubles): memory stays O(block x K), whatever the sequence's length.
    The doubles come in one array from ``empty(name, shape)`` (the driver's, kept from pass to
    pass; only the pages written count in memory)."""

    def __init__(self, block_rows, k, n_head, n_tail, empty):
        most_head, most_tail = self.counts(block_rows, k)
        self.first = n_head - min(most_head, n_head)  # the first head segment kept
        kept_head, kept_tail = n_head - self.first, min(most_tail, n_tail)
        shapes = [(kept_head, block_rows, k), (kept_head, block_rows, k),
                  (kept_head, block_rows), (kept_tail, block_rows, k), (kept_tail, block_rows)]
        sizes = [int(np.prod(shape)) for shape in shapes]
        flat = empty("kept", (self.doubles(block_rows, k, most_head, most_tail),))[:sum(sizes)]
        (self.head_frame, self.head_alpha, self.head_scale, self.tail_frame,
         self.tail_shifts) = (part.reshape(shape) for part, shape in zip(
             np.split(flat, np.cumsum(sizes)[:-1]), shapes))

    @staticmethod
    def doubles(block_rows, k, n_head, n_tail):
        """Doubles kept for ``n_head`` head segments (scaled densities, forward messages,
        scales) and ``n_tail`` tail segments (scaled densities, shifts)."""
        return block_rows * (n_head * (2 * k + 1) + n_tail * (k + 1))

    @classmethod
    def counts(cls, block_rows, k):
        """The most head and tail segments kept: ``KEPT_HEAD`` and ``KEPT_TAIL``, both
        scaled down (rounding down) to fit ``KEPT_BUDGET_BYTES``."""
        nbytes = 8 * cls.doubles(block_rows, k, KEPT_HEAD, KEPT_TAIL)
        scale = min(1.0, KEPT_BUDGET_BYTES / nbytes)
        return int(KEPT_HEAD * scale), int(KEPT_TAIL * scale)

    def head_forward(self, s, n):
        """``(alpha, scale)`` buffers for the forward pass of head segment ``s`` (``n`` rows)
        when it is kept, else None."""
        i = s - self.first
        return (self.head_alpha[i, :n], self.head_scale[i, :n]) if i >= 0 else None

    def keep_head(self, s, frame):
        """Keep head segment ``s``'s scaled densities (after its forward pass)."""
        if s >= self.first:
            self.head_frame[s - self.first, :frame.shape[0]] = frame

    def head(self, s, n):
        """``(scaled densities, forward messages, inverse scales, None)`` of head segment
        ``s``, or None when it is not kept."""
        i = s - self.first
        if i < 0:
            return None
        return self.head_frame[i, :n], self.head_alpha[i, :n], self.head_scale[i, :n], None

    def tail_shift(self, s, n):
        """The buffer for tail segment ``s``'s shifts when it is kept, else None."""
        return self.tail_shifts[s, :n] if s < self.tail_frame.shape[0] else None

    def keep_tail(self, s, frame):
        """Keep tail segment ``s``'s scaled densities (after ``beta_segment``)."""
        if s < self.tail_frame.shape[0]:
            self.tail_frame[s, :frame.shape[0]] = frame

    def tail(self, s, n, work):
        """``(scaled densities, forward messages' buffer in work, shifts, True)`` of tail
        segment ``s``, or None when it is not kept."""
        if s >= self.tail_frame.shape[0]:
            return None
        return self.tail_frame[s, :n], work.gamma[:n], self.tail_shifts[s, :n], True


class _Pass:
    """What one pass needs: the family and packing, chunk size, block rows, buffers for blocks
    of whole sequences (``work``), and for the segments of a longer sequence one set of
    buffers per thread (``stages``: the two halves, or the pipeline's stages; made on first
    use)."""

    def __init__(self, driver, family, packed):
        self.driver, self.family, self.packed = driver, family, packed
        self.k = packed.log_norm.shape[0]
        self.chunk = driver._chunk(self.k)
        self.block_rows = driver.block_rows or BLOCK_CHUNKS * self.chunk
        rows = min(self.block_rows, driver.n_samples)
        self.work = hmm.SequenceWork(family, packed, rows, min(driver.lengths.size, rows),
                                     self.chunk, driver.n_threads, self._empty("block"))
        self._stages = None
        self.stopped = False  # set when one thread of a long sequence's pass raised

    @property
    def stages(self):
        """The buffers of the two threads over a long sequence: two when there are two
        threads to share, else the blocks' ``work``."""
        if self._stages is None:
            if self.driver.n_threads < 2:
                self._stages = [self.work]
            else:
                self._stages = [hmm.SequenceWork(self.family, self.packed, self.block_rows, 1,
                                                 self.chunk, self.stage_threads,
                                                 self._empty(f"stage{i}"))
                                for i in range(2)]
        return self._stages

    @property
    def stage_threads(self):
        """Threads of each stage's kernels on a long sequence's segments (half each)."""
        n = self.driver.n_threads
        return n if n < 2 else n // 2

    def _empty(self, prefix):
        """The driver's kept buffers (:meth:`SequenceDriver._empty`) under names starting with
        ``prefix``."""
        return lambda name, shape: self.driver._empty(f"{prefix}.{name}", shape)

    def both(self, first, second):
        """``(first(), second())``: ``second`` on a second thread while ``first`` runs on this
        one when there are two stages, else one after the other (the same operations). If
        ``first`` raises (Ctrl-C), ``second`` stops at its next segment (:meth:`emissions`)
        instead of finishing its half of the sequence."""
        if len(self.stages) < 2:
            return first(), second()
        with ThreadPoolExecutor(1, thread_name_prefix="fastem-halves") as pool:
            future = pool.submit(second)
            try:
                return first(), future.result()
            except BaseException:
                self.stopped = True
                raise

    def read(self, a, b):
        """``(rows [a, b), missing rows or None)``; raises once the pass has stopped
        (:meth:`both`)."""
        if self.stopped:
            raise RuntimeError("fastem: the pass was interrupted")
        return self.driver.read(a, b, self.packed.dtype)

    def emissions(self, a, b, work):
        """Read rows [a, b) and compute their emission log-densities into ``work.frame``:
        ``(block, missing, frame, work)``; raises once the pass has stopped (:meth:`both`)."""
        block, missing = self.read(a, b)
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
