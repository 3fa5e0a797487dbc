"""The reference's threads: BLAS on one thread wherever the reference splits work itself."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from loss_reference import engine


def _blas_threads() -> set:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_blas_runs_on_one_thread_within_the_block_and_after_a_parallel_map(monkeypatch):
    """Within ``blas_on_one_thread`` numpy's BLAS has one thread, also after a
    ``parallel_map`` inside it (whose own limit must not restore more), and outside it the
    caller's setting holds again."""
    monkeypatch.setattr(engine, "_threads", lambda: 2)
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        with engine.blas_on_one_thread():
            assert _blas_threads() == {1}
            assert engine.parallel_map(lambda k: k * k, [1, 2, 3]) == [1, 4, 9]
            assert _blas_threads() == {1}
        assert _blas_threads() == {2}


def test_one_core_leaves_blas_as_it_is(monkeypatch):
    """Where there is one core, there is nothing to limit."""
    monkeypatch.setattr(engine, "_threads", lambda: 1)
    with threadpool_limits(limits=2, user_api="blas"):
        with engine.blas_on_one_thread():
            assert _blas_threads() == {2}
