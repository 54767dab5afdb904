"""Data sources and the chunk iterator: the only place that knows about rows, blocks and weights.

A source is any 2-D array-like that can be sliced by rows without reading the rest: numpy
arrays, ``np.memmap``, a path to a ``.npy`` file (memory-mapped, never loaded), or objects with
``shape``, ``dtype`` and row slicing (h5py, zarr). Data are never copied whole: blocks of rows are
handed to the kernels as views when they are already C-contiguous in the working dtype, and
converted one block at a time otherwise.
"""
import contextlib
import ctypes
import mmap
import os
import secrets
import threading

import numpy as np

WORK_DTYPES = (np.float32, np.float64)
BLOCK_ROWS = 1 << 16  # rows per block of the passes that run no kernel (checks, sampling)


def open_source(X, name="X"):
    """Return ``X`` as a row-sliceable 2-D array-like without reading it; memory-map ``.npy`` paths."""
    if isinstance(X, (str, bytes, os.PathLike)):
        path = os.fsdecode(X)
        if not os.path.exists(path):
            raise ValueError(f"{name}: no such file: {path!r}")
        if os.path.isdir(path):
            raise ValueError(f"{name}: {path!r} is a directory, not a data file")
        check_npy_magic(path, name)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, ...
            raise ValueError(f"{name}: cannot memory-map {path!r} as a .npy array (a damaged "
                             f"header, a truncated file or object data): {exc}") from None
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name}: sparse data is not supported, dense data is required; convert it with "
            "X.toarray() if it fits in memory"
        )
    if not (hasattr(X, "shape") and hasattr(X, "dtype") and hasattr(X, "__getitem__")):
        X = np.asarray(X)
    if X.dtype == object:
        X = np.asarray(X, dtype=np.float64)  # in memory already; numpy names unconvertible items
    return X


def check_npy_magic(path, name="X"):
    """ValueError naming what ``path`` is when it does not start as a ``.npy`` file does (numpy
    would call any such file "pickled data")."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        return
    if head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{name}: {path!r} is a .npz archive (or another zip file), not a .npy "
                         "array: pass one of its arrays, np.load(path)[name]")
    raise ValueError(f"{name}: {path!r} is not a .npy file (it does not start with the .npy "
                     "header); a headerless binary file is read with fastem.data.open_raw (CLI: "
                     "--dtype and --n-features)")


def working_dtype(dtype, name="X"):
    """float32 stays float32; other real numbers compute in float64; anything else is an error."""
    dtype = np.dtype(dtype)
    if dtype == np.float32 or dtype == np.float64:
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    if dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported (dtype {dtype})")
    raise ValueError(f"{name}: expected numeric data, got dtype {dtype}")


def check_shape(X, estimator, name="X", min_samples=1, n_features=None):
    """Validate that ``X`` is 2-D and non-empty, with ``n_features`` columns when given, in
    scikit-learn's words, naming the ``estimator`` class."""
    if len(X.shape) != 2:
        hint = (
            " Reshape your data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample."
        )
        raise ValueError(f"{name}: Expected 2D array, got {len(X.shape)}D array instead.{hint}")
    n, d = X.shape
    if n < min_samples:
        raise ValueError(
            f"{name}: Found array with {n} sample(s) (shape={tuple(X.shape)}) while a minimum of "
            f"{min_samples} is required by {estimator}."
        )
    if d < 1:
        raise ValueError(
            f"{name}: Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of "
            f"1 is required by {estimator}."
        )
    if n_features is not None and d != n_features:
        raise ValueError(
            f"X has {d} features, but {estimator} is expecting {n_features} features as input."
        )


def check_sample_weight(sample_weight, n_samples):
    """Return weights as a float64 vector of length ``n_samples`` (None stays None)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {w.shape}, expected ({n_samples},) to match X"
        )
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (w < 0).any():
        raise ValueError("sample_weight contains negative values")
    if not np.isfinite(w.sum()):
        raise ValueError(f"sample_weight sums to {w.sum()} in float64 (largest weight "
                         f"{w.max():g}): rescale the weights")
    return np.ascontiguousarray(w)


def check_labels(y, n_samples, n_components, name="y"):
    """Partial labels (scikit-learn's semi-supervised convention): an integer array, memmap
    or ``.npy`` path of ``n_samples`` component indices, -1 for unlabelled rows. Returns them
    (a path memory-mapped), or None when no row is labelled or ``y`` marks no row with -1
    (then it is a target that unsupervised estimators ignore, as scikit-learn's pipelines
    and checks pass it); ValueError naming what is wrong (length, dtype, the first label
    outside [-1, n_components)). One pass, block by block."""
    if y is None:
        return None
    y = open_source(y, name) if isinstance(y, (str, bytes, os.PathLike)) else y
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        y = np.asarray(y)
    if np.dtype(y.dtype).kind not in "biuf":
        return None
    summaries = [labels_summary(np.asarray(y[start:start + BLOCK_ROWS]), start, n_components)
                 for start in range(0, y.shape[0] if y.shape else 0, BLOCK_ROWS)]
    return y if judge_labels(y.dtype, y.shape, n_samples, n_components, summaries, name) \
        else None


def labels_summary(block, start, n_components):
    """What :func:`judge_labels` needs of a block of labels whose first row is ``start``:
    (whether it holds -1, whether it holds a label, (row, value) of its first label outside
    [-1, n_components) or None)."""
    bad = np.flatnonzero((block < -1) | (block >= n_components)) if block.ndim == 1 else []
    first = None if not len(bad) else (start + int(bad[0]), block[bad[0]].item())
    return bool((block == -1).any()), bool((block >= 0).any()), first


def judge_labels(dtype, shape, n_samples, n_components, summaries, name="y"):
    """Whether labels of ``dtype`` and ``shape`` with the blocks' :func:`labels_summary`
    are used (False: ``y`` is a target to ignore), or ValueError naming the problem (see
    :func:`check_labels`)."""
    if np.dtype(dtype).kind not in "biuf" or not any(s[0] for s in summaries):
        return False
    if len(shape) != 1 or shape[0] != n_samples:
        raise ValueError(f"{name} must hold one label per row of X, shape ({n_samples},), got "
                         f"shape {tuple(shape)}")
    if np.dtype(dtype).kind not in "iu":
        raise ValueError(f"{name} must hold integer labels (-1 for unlabelled rows), got dtype "
                         f"{dtype}")
    for _, _, first in summaries:
        if first is not None:
            raise ValueError(f"{name}[{first[0]}] = {first[1]} is not a component: "
                             f"labels must lie in [-1, {n_components}) (-1: unlabelled)")
    return any(s[1] for s in summaries)


def block_labels(labels, start, n):
    """Rows [start, start + n) of ``labels`` as a C-contiguous intp array (None stays None)."""
    return None if labels is None else np.ascontiguousarray(labels[start:start + n],
                                                             dtype=np.intp)


def iter_blocks(X, block_rows, dtype, sample_weight=None, bar=None):
    """Yield ``(start, block, weights)`` over consecutive row ranges of ``X``.

    ``block`` is a C-contiguous ``dtype`` array of at most ``block_rows`` rows: a view into
    ``X`` when possible, else a converted copy of that block only. For a memory-mapped file,
    a thread reads ahead while the current block is being computed on. A progress
    ``bar``, when given, advances by a block's rows once the caller is done with it.
    """
    n = X.shape[0]
    check_size = size_check(X)
    with ReadAhead.for_source(X) as read_ahead:
        for start in range(0, n, block_rows):
            stop = min(start + block_rows, n)
            check_size()
            read_ahead.advance(stop)
            block = np.ascontiguousarray(X[start:stop], dtype=dtype)
            weights = None if sample_weight is None else sample_weight[start:stop]
            yield start, block, weights
            if bar is not None:
                bar.update(stop - start)


class SourceChanged(OSError):
    """A memory-mapped source file shrank (truncated by another process): reading the rows it
    lost would kill the process with SIGBUS. ``result``, set by the EM loop, holds the last
    completed iteration."""

    result = None


def size_check(X):
    """A function raising :class:`SourceChanged` when the file under a memory-mapped source
    (``np.memmap``, a ``.npy`` path, a raw file, or a view of one) is now shorter than its
    mapping; a no-op for other sources. One ``fstat`` of the mapped file per call."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap) and isinstance(X.base, mmap.mmap):
            mapping, path = X.base, os.fsdecode(X.filename)
            needed = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY + len(mapping)

            def check():
                size = mapping.size()  # the mapped file's size now (fstat of its descriptor)
                if size < needed:
                    raise SourceChanged(f"{path!r} shrank to {size} bytes while being read (it "
                                        f"held {needed}): was it truncated or rewritten by "
                                        "another process? Its rows can no longer be read")
            return check
        X = X.base
    return lambda: None


def _page_residency():
    """``resident(address, length)``: whether every page of a mapped range is in the page cache
    (``mincore``), or None where libc has no ``mincore``."""
    try:
        mincore = ctypes.CDLL(None, use_errno=True).mincore
    except (OSError, AttributeError):
        return None
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    page = mmap.PAGESIZE

    def resident(address, length):
        first = address - address % page
        pages = -(-(address + length - first) // page)
        vector = np.zeros(pages, dtype=np.uint8)
        if mincore(first, address + length - first, vector.ctypes.data) != 0:
            return False  # unknown: read it
        return bool((vector & 1).all())
    return resident


class ReadAhead:
    """A background thread reading a memory-mapped file up to ``WINDOW`` bytes ahead of the
    rows in use, so the disk works while the kernels compute and their page faults find the
    pages in the page cache: a cold pass then costs about max(read, compute), not the sum.

    The thread reads each ``PIECE`` that is not already cached (``mincore``) with ``pread``
    into a reused buffer, so it waits for the disk itself, never runs more than the window
    ahead (a file larger than RAM evicts only pages already used) and copies nothing for a
    cached file. ``posix_fadvise(WILLNEED)`` instead, from this thread or the one iterating
    blocks, made cold passes over a 28.8 GB file slower than the kernel's own read-ahead
    (benchmarks/README.md, "Read-ahead on a file larger than RAM"). Use as a context manager;
    ``advance(row)`` says rows before ``row`` are being read."""

    WINDOW = 256 << 20
    PIECE = 8 << 20
    enabled = True
    resident = staticmethod(_page_residency() or (lambda address, length: False))

    def __init__(self, X):
        self.mapping = X  # keeps the mapping that ``resident`` looks at alive
        self.consumed = self.position = self.offset = X.offset  # file bytes used / read
        self.end, self.row_bytes = X.offset + X.nbytes, X.strides[0]
        self.address = X.ctypes.data - X.offset  # of file byte 0
        self.stopping = False
        self.changed = threading.Condition()
        fd = os.open(X.filename, os.O_RDONLY)
        self.thread = threading.Thread(target=self._read, args=(fd,), daemon=True,
                                       name="fastem-read-ahead")
        self.thread.start()

    @classmethod
    def for_source(cls, X):
        """A ReadAhead for a whole memory-mapped file (not a view into one), else a no-op."""
        if not (cls.enabled and hasattr(os, "preadv") and isinstance(X, np.memmap)
                and isinstance(X.base, mmap.mmap) and X.flags.c_contiguous
                and getattr(X, "filename", None)):
            return _NoReadAhead()
        return cls(X)

    def _read(self, fd):
        buffer = mmap.mmap(-1, self.PIECE)  # page-aligned, and returned to the OS at the end
        try:
            while self.position < self.end:
                with self.changed:
                    self.changed.wait_for(
                        lambda: self.stopping or self.position < self.consumed + self.WINDOW)
                    if self.stopping:
                        return
                    # Rows the kernels already fault in are not read twice: start past them.
                    self.position = max(self.position, self.consumed)
                    if self.position >= self.end:
                        return
                    size = min(self.PIECE, self.end - self.position,
                               self.consumed + self.WINDOW - self.position)
                if not self.resident(self.address + self.position, size):
                    if os.preadv(fd, [memoryview(buffer)[:size]], self.position) <= 0:
                        return  # the file shrank: the reader's size check reports it
                self.position += size
        except OSError:  # read-ahead is an optimisation: the pass's own reads report errors
            return
        finally:
            buffer.close()
            os.close(fd)

    def advance(self, row):
        """Rows before ``row`` are about to be read: let the thread run a window past them."""
        with self.changed:
            self.consumed = self.offset + row * self.row_bytes
            self.changed.notify()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with self.changed:
            self.stopping = True
            self.changed.notify()
        self.thread.join()


class _NoReadAhead:
    """ReadAhead's stand-in for sources that are not a whole memory-mapped file."""

    thread = None

    def advance(self, row):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def finite_rows(block):
    """Which rows of a 2-D block hold neither NaN nor infinity.

    NaN and infinity reach a row's sum, so one matrix-vector product finds the candidates,
    ~10x faster than ``np.isfinite(block).all(axis=1)``; rows whose finite values overflow
    the sum are then checked exactly. Integer blocks are finite."""
    if not np.issubdtype(block.dtype, np.inexact):
        return np.ones(block.shape[0], dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):  # the sums' own inf and NaN
        finite = np.isfinite(block @ np.ones(block.shape[1], dtype=block.dtype))
    suspects = np.flatnonzero(~finite)
    if suspects.size:
        finite[suspects] = np.isfinite(block[suspects]).all(axis=1)
    return finite


def screen(block, start, family=None, omit=False, name="X"):
    """Check the rows of a block (its first row is row ``start`` of the source) as a pass meets
    them; returns which rows hold NaN or infinity when ``omit`` and some do, else None.

    Raises ValueError at the first row holding NaN or infinity (unless ``omit``) or, given a
    ``family`` that checks its support, a finite value outside it (e.g. a negative count:
    such rows are errors even where NaN rows are omitted), whichever comes first.
    """
    finite = finite_rows(block)
    n = block.shape[0]
    first_nonfinite = n if finite.all() else int(np.argmin(finite))
    if family is not None and family.checks_support:
        unsupported = np.flatnonzero(finite & family.invalid_rows(block))
        if unsupported.size and (omit or unsupported[0] < first_nonfinite):
            raise unsupported_error(family, name, start + unsupported[0], block[unsupported[0]])
    if first_nonfinite == n:
        return None
    if not omit:
        raise nonfinite_error(name, start + first_nonfinite)
    return ~finite


def screen_missing(block, start, family=None, name="X"):
    """:func:`screen` for ``nan_policy="marginalize"``, where NaN entries are missing: raises
    ValueError at the first row holding infinity (not missing: an error) or, given a
    ``family`` that checks its support, an observed value outside it; returns which rows have
    no observed entry when some do (they are left out), else None."""
    finite = finite_rows(block)
    n = block.shape[0]
    suspects = np.flatnonzero(~finite)
    infinite = np.zeros(n, dtype=bool)
    infinite[suspects] = np.isinf(block[suspects]).any(axis=1)
    first_infinite = int(np.argmax(infinite)) if infinite.any() else n
    if family is not None and family.checks_support:  # NaN is not outside any support
        unsupported = np.flatnonzero(~infinite & family.invalid_rows(block))
        if unsupported.size and unsupported[0] < first_infinite:
            raise unsupported_error(family, name, start + unsupported[0], block[unsupported[0]])
    if first_infinite < n:
        raise ValueError(f"{name} contains infinity (first at row {start + first_infinite}); "
                         "nan_policy='marginalize' treats only NaN entries as missing")
    return empty_rows(block, suspects)


def empty_rows(block, suspects=None):
    """Which rows of a float block are all NaN, or None when none is (``suspects``: indices of
    rows that may be, e.g. those that are not finite; by default those whose first entry is
    NaN, a cheaper screen than testing every entry)."""
    suspects = np.flatnonzero(np.isnan(block[:, 0])) if suspects is None else suspects
    if not suspects.size:
        return None
    empty = np.zeros(block.shape[0], dtype=bool)
    empty[suspects] = np.isnan(block[suspects]).all(axis=1)
    return empty if empty.any() else None


def missing_rows(X, dtype, observed, sample_weight=None, family=None, bar=None, offset=0):
    """One pass under ``nan_policy="marginalize"``: yield ``(start, empty)`` for each block
    holding rows with no observed entry (``empty``: their mask), adding into ``observed``
    (D,) int64 the observed entries of each column over rows of positive weight. Raises as
    :func:`screen_missing` does, rows numbered from ``offset``."""
    for start, block, w in iter_blocks(X, BLOCK_ROWS, dtype, sample_weight, bar):
        empty = screen_missing(block, start + offset, family)
        seen = block == block
        observed += (seen if w is None else seen & (w > 0)[:, None]).sum(axis=0)
        if empty is not None:
            yield start, empty


def check_observed(observed, name="X"):
    """ValueError naming the first column with no observed entry (``observed``: per column,
    the number of rows of positive weight where it is not NaN)."""
    never = np.flatnonzero(np.asarray(observed) == 0)
    if never.size:
        raise ValueError(f"{name}: column {int(never[0])} is missing (NaN) in every row of "
                         "positive weight, so nothing can be learnt about it: drop the column")


def check_finite(X, dtype, name="X", family=None, bar=None):
    """Raise ValueError at the first row of ``X`` that :func:`screen` refuses (one streamed
    pass, shown on ``bar``)."""
    for start, block, _ in iter_blocks(X, BLOCK_ROWS, dtype, bar=bar):
        screen(block, start, family, name=name)


def nonfinite_rows(X, dtype, name="X", family=None, bar=None):
    """Yield ``(start, mask)`` for each block holding NaN or infinity: its rows that do (one
    streamed pass, shown on ``bar``); ValueError at a finite row outside the ``family``'s
    support."""
    for start, block, _ in iter_blocks(X, BLOCK_ROWS, dtype, bar=bar):
        bad = screen(block, start, family, omit=True, name=name)
        if bad is not None:
            yield start, bad


def without_rows(weights, bad):
    """A block's weights (None means ones) with the ``bad`` rows at zero, as a new array."""
    kept = np.ones(bad.size) if weights is None else np.array(weights, dtype=np.float64)
    kept[bad] = 0.0
    return kept


def column_max(block):
    """Largest finite value of each column of a block, as float64 (-inf where there is none)."""
    return np.where(np.isfinite(block), block, -np.inf).max(axis=0).astype(np.float64)


def nonfinite_error(name, row):
    """The ValueError for a row holding NaN or infinity."""
    return ValueError(f"{name} contains NaN or infinity (first at row {row}); remove or impute "
                      "it, or pass nan_policy='omit'")


def unsupported_error(family, name, row, values):
    """The ValueError for a row the family cannot model, with its first values."""
    return ValueError(f"{family.error_message}: {name} row {row} is "
                      f"{np.asarray(values).tolist()[:10]}")


PER_ROW = {"log_prob": "log p(x) of each row, (n,) float64",
           "resp": "posterior p(z = k | x) of each row, (n, K) float64",
           "labels": "most probable component of each row, (n,) intp"}


def per_row_output(what, n_samples, n_components):
    """Shape and dtype of the per-row output ``what`` (a key of :data:`PER_ROW`)."""
    if what == "resp":
        return (n_samples, n_components), np.dtype(np.float64)
    return (n_samples,), np.dtype(np.intp if what == "labels" else np.float64)


def output_array(out, shape, dtype, name="out", files=None, inputs=()):
    """Where per-row results go: a new array (None), a new ``.npy`` file (a path, memory-mapped,
    so results larger than memory stream to disk) or a given writeable array of that shape.

    A path is refused when it is the same file as one of ``inputs`` (sources or paths), before
    anything is opened for writing; given ``files`` (:class:`NewFiles`), the file is written
    under a temporary name that ``files`` renames when the pass completes."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if isinstance(out, (str, os.PathLike)):
        check_output_path(out, inputs, name)
        path = os.fspath(out) if files is None else files.create(out)
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    if (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype
            or not out.flags.c_contiguous or not out.flags.writeable):
        flags = getattr(out, "flags", None)
        layout = "" if flags is None else (("" if flags.c_contiguous else ", not C-contiguous")
                                           + ("" if flags.writeable else ", read-only"))
        raise ValueError(
            f"{name} must be a writeable C-contiguous {dtype} array of shape {shape} or a path; "
            f"got {type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}"
            f"{layout}"
        )
    if any(isinstance(x, np.ndarray) and np.may_share_memory(out, x) for x in inputs):
        raise ValueError(f"{name} shares memory with the input: writing it would overwrite the "
                         "data being read; pass another array")
    return out


def source_path(X):
    """The file a source reads (a path, a memmap or a view of one, an h5py dataset), or None."""
    if isinstance(X, (str, bytes, os.PathLike)):
        return os.fsdecode(X)
    while isinstance(X, np.ndarray) and not isinstance(X, np.memmap) and X.base is not None:
        X = X.base
    name = getattr(X, "filename", None)
    if name is None:
        name = getattr(getattr(X, "file", None), "filename", None)  # h5py
    return os.fsdecode(name) if isinstance(name, (str, os.PathLike)) else None


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file: the same real path (symbolic links), or the
    same device and inode (hard links)."""
    a, b = os.fsdecode(a), os.fsdecode(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_output_path(path, inputs, name="out"):
    """ValueError when the output ``path`` is the same file as one of ``inputs`` (paths or
    sources): writing it would destroy the data being read (a mapped file truncated under a
    pass kills the process with SIGBUS)."""
    for source in inputs:
        src = source_path(source)
        if src is not None and same_file(path, src):
            raise ValueError(f"{name}: {os.fsdecode(path)!r} is the input file {src!r}; writing "
                             "it would destroy the input: choose another output path")


class NewFiles:
    """New files written under temporary names in their own folders (so the rename is atomic)
    and renamed to their paths when the ``with`` block completes, or removed when it fails or
    is interrupted: a path never holds a partial, complete-looking file.

    Temporary files are created with mode 0666 less the umask, as ``open`` would create the
    file itself, and are named ``.{name}.{pid}.{random}.tmp``; those of processes that no
    longer exist (killed while writing) are removed when the same path is written again."""

    def __init__(self):
        self.pending = []  # (temporary path, final path)

    def create(self, path):
        """A new empty temporary file for ``path``; returns its name."""
        path = os.path.abspath(os.fsdecode(path))
        folder, base = os.path.split(path)
        remove_stale_temporaries(folder, base)
        while True:
            tmp = os.path.join(folder, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                continue
            self.pending.append((tmp, path))
            return tmp

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            for tmp, path in self.pending:
                os.replace(tmp, path)
        else:
            for tmp, _ in self.pending:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return False


@contextlib.contextmanager
def new_file(path):
    """Yield a temporary name for the new file ``path``, renamed to it when the block completes
    (see :class:`NewFiles`)."""
    with NewFiles() as files:
        yield files.create(path)


def remove_stale_temporaries(folder, base):
    """Remove temporary files of :class:`NewFiles` for ``base`` left by dead processes."""
    prefix = f".{base}."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def open_raw(path, dtype, n_features, offset=0):
    """Memory-map a headerless binary file of ``n_features`` columns of ``dtype`` after
    ``offset`` bytes; ValueError when the file is missing or its size does not fit the shape."""
    path = os.fspath(path)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{path!r}: unknown dtype {dtype!r}") from None
    working_dtype(dtype, name=path)
    if not os.path.exists(path):
        raise ValueError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a data file")
    if n_features < 1 or offset < 0:
        raise ValueError("n_features must be >= 1 and offset >= 0")
    payload = os.path.getsize(path) - offset
    row_bytes = dtype.itemsize * n_features
    if payload <= 0 or payload % row_bytes:
        raise ValueError(
            f"{path!r}: {payload} bytes after offset {offset} are not a whole number of rows of "
            f"{n_features} x {dtype} ({row_bytes} bytes): truncated file or wrong dtype/shape?"
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=offset,
                     shape=(payload // row_bytes, n_features))


def check_lengths(lengths, n_samples, name="lengths"):
    """``lengths`` of consecutive sequences (None: one sequence of every row) as an intp
    vector of positive integers summing to ``n_samples``; a ``.npy`` path is loaded."""
    if lengths is None:
        return np.array([n_samples], dtype=np.intp)
    if isinstance(lengths, (str, os.PathLike)):
        lengths = np.load(os.fspath(lengths), allow_pickle=False)
    raw = np.asarray(lengths)
    if raw.ndim != 1 or raw.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of sequence lengths, got shape "
                         f"{raw.shape}")
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(raw == np.round(raw))):
        raise ValueError(f"{name} must hold integers, got {raw.dtype}")
    out = raw.astype(np.intp)
    bad = np.flatnonzero(out < 1)
    if bad.size:
        raise ValueError(f"{name} must be positive: sequence {int(bad[0])} has length "
                         f"{int(out[bad[0]])}")
    if int(out.sum()) != n_samples:
        raise ValueError(f"{name} sum to {int(out.sum())}, but X has {n_samples} rows")
    return out


def sequence_runs(lengths, block_rows):
    """Yield ``(start, stop, bounds)`` over runs of whole sequences: the consecutive sequences
    that fit in ``block_rows`` rows, or one longer sequence alone (its passes then read it in
    segments, :func:`segments`); ``bounds`` (n_seq + 1,) intp are the sequences' starts inside
    the run, then its row count."""
    ends = np.cumsum(lengths)
    first, start = 0, 0
    while first < lengths.size:
        # the last sequence ending within block_rows of start, and at least one sequence
        last = max(first + 1, int(np.searchsorted(ends, start + block_rows, side="right")))
        stop = int(ends[last - 1])
        yield start, stop, np.concatenate([[0], ends[first:last] - start]).astype(np.intp)
        first, start = last, stop


def segments(start, stop, block_rows):
    """The consecutive row ranges ``(a, b)`` of at most ``block_rows`` rows that cover
    [start, stop), first to last."""
    cuts = list(range(start, stop, block_rows)) + [stop]
    return list(zip(cuts[:-1], cuts[1:]))


def read_rows(X, start, stop, dtype):
    """Rows [start, stop) of ``X`` as a C-contiguous ``dtype`` array (a view when possible)."""
    return np.ascontiguousarray(X[start:stop], dtype=dtype)


def check_missing(X, dtype, name="X", family=None, bar=None, offset=0, required=True):
    """One pass under ``nan_policy="omit"`` for sequences, where a row that is all NaN is a
    missing observation: ``(missing rows, the first fully observed row or None)``. ValueError
    naming the first row (numbered from ``offset``) that holds NaN beside numbers, or infinity,
    or (given a ``family``) a finite value outside its support; and, when ``required``, when
    no row is observed."""
    count, filler = 0, None
    for start, block, _ in iter_blocks(X, BLOCK_ROWS, dtype, bar=bar):
        start += offset
        observed = finite_rows(block)
        if family is not None and family.checks_support:
            bad = np.flatnonzero(observed & family.invalid_rows(block))
            if bad.size:
                raise unsupported_error(family, name, start + bad[0], block[bad[0]])
        if observed.all():
            filler = block[0].copy() if filler is None else filler
            continue
        suspects = np.flatnonzero(~observed)
        partial = ~np.isnan(block[suspects]).all(axis=1)
        if partial.any():
            row = int(suspects[np.argmax(partial)])
            raise ValueError(f"{name} row {start + row} holds NaN beside numbers, or infinity: "
                             "only a row that is all NaN is a missing observation; got "
                             f"{block[row].tolist()[:10]}")
        count += suspects.size
        if filler is None and suspects.size < block.shape[0]:
            filler = block[np.argmax(observed)].copy()
    if filler is None and required:
        raise ValueError(f"{name}: every row is missing (all NaN): nothing to fit or score")
    return count, filler


def write_per_row(out, shape, dtype, fill, inputs=(), name="out"):
    """``(fill(target), target)``: ``fill`` writes per-row results into ``target``, a new
    array (``out`` None), a given array, or a new ``.npy`` file (a path; memory-mapped, written
    under a temporary name and renamed once ``fill`` returns, then opened again), as
    :func:`output_array` makes them."""
    with NewFiles() as files:
        target = output_array(out, shape, dtype, name=name, files=files, inputs=inputs)
        result = fill(target)
        if isinstance(target, np.memmap):
            target.flush()
    if isinstance(out, (str, os.PathLike)):
        target = np.load(os.fspath(out), mmap_mode="r+")
    return result, target
