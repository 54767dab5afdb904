"""The read-ahead thread of memory-mapped passes: runs a bounded window ahead of the rows in
use, changes no block, and never outlives its pass."""
import threading
import time

import numpy as np
import pytest

from fastem import data


def read_ahead_threads():
    return [t for t in threading.enumerate() if t.name == "fastem-read-ahead"]


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the read-ahead thread did not get there"
        time.sleep(0.001)


@pytest.fixture
def mapped(tmp_path):
    X = np.random.RandomState(0).rand(4096, 8).astype(np.float32)  # 128 KiB of rows
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, np.load(path, mmap_mode="r")


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(data.ReadAhead, "WINDOW", 16 << 10)
    monkeypatch.setattr(data.ReadAhead, "PIECE", 4 << 10)


def test_the_thread_stays_one_window_ahead_and_ends_at_the_file_end(mapped, small_window):
    _, X = mapped
    row_bytes = X.strides[0]
    with data.ReadAhead.for_source(X) as ahead:
        start = ahead.offset
        wait_until(lambda: ahead.position == start + data.ReadAhead.WINDOW)
        time.sleep(0.05)  # it waits there: never more than a window ahead of the rows in use
        assert ahead.position == start + data.ReadAhead.WINDOW
        ahead.advance(1000)
        wait_until(lambda: ahead.position == start + 1000 * row_bytes + data.ReadAhead.WINDOW)
        ahead.advance(X.shape[0])
        wait_until(lambda: not ahead.thread.is_alive())
        assert ahead.position == start + X.nbytes


def test_blocks_are_unchanged_and_no_thread_outlives_a_pass(mapped, small_window):
    X, mapping = mapped
    got = [(start, block.copy()) for start, block, _ in
           data.iter_blocks(mapping, 300, np.float32)]
    assert np.array_equal(np.concatenate([b for _, b in got]), X)
    assert [s for s, _ in got] == list(range(0, X.shape[0], 300))
    assert not read_ahead_threads()


def test_an_abandoned_pass_stops_its_thread(mapped, small_window):
    _, X = mapped
    blocks = data.iter_blocks(X, 100, np.float32)
    next(blocks)
    assert len(read_ahead_threads()) == 1
    blocks.close()  # what an exception in the consumer's loop does
    assert not read_ahead_threads()


def test_only_whole_mapped_files_are_read_ahead(mapped):
    X, mapping = mapped
    for source in (X, mapping[10:], mapping[:, :4]):
        with data.ReadAhead.for_source(source) as ahead:
            assert ahead.thread is None


def test_only_pages_not_in_the_page_cache_are_read(mapped, small_window, monkeypatch):
    """A cached file (as a file just written is) costs no copy; uncached pieces of the window
    ahead are read once, each byte exactly once; rows already in use are not read again."""
    _, X = mapped
    reads = []
    real_preadv = data.os.preadv

    def counting_preadv(fd, buffers, position):
        reads.append((position, sum(len(b) for b in buffers)))
        return real_preadv(fd, buffers, position)

    def window_read(ahead, consumed):
        wait_until(lambda: ahead.position == consumed + data.ReadAhead.WINDOW)

    monkeypatch.setattr(data.os, "preadv", counting_preadv)
    with data.ReadAhead.for_source(X) as ahead:
        window_read(ahead, X.offset)
    assert reads == []
    monkeypatch.setattr(data.ReadAhead, "resident", staticmethod(lambda address, length: False))
    with data.ReadAhead.for_source(X) as ahead:
        window_read(ahead, X.offset)
        ahead.advance(2000)  # past the window read: the rows in between are the kernels'
        window_read(ahead, X.offset + 2000 * X.strides[0])
    first, skipped = X.offset + data.ReadAhead.WINDOW, X.offset + 2000 * X.strides[0]
    assert [p for p, _ in reads] == (list(range(X.offset, first, data.ReadAhead.PIECE))
                                     + list(range(skipped, skipped + data.ReadAhead.WINDOW,
                                                  data.ReadAhead.PIECE)))
    assert sum(size for _, size in reads) == 2 * data.ReadAhead.WINDOW
