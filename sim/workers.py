"""Where the twin's side jobs run (sensor noise, flagellum bands): on one worker thread, or inline.

A worker thread overlaps them with the rest of a frame (FFTs and the random draw release the GIL), which
is what video rate on 2 cores needs (GUI, live runs). Campaign workers each already own a core: a thread
there only contends for the GIL and costs ~10% more CPU per frame, so they turn it off.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

_pool: ThreadPoolExecutor | None = None
_threaded = True


def set_threaded(enabled: bool) -> None:
    """Run side jobs on the worker thread (default) or inline in the caller, for the whole process."""
    global _threaded
    _threaded = enabled


def threaded() -> bool:
    """Whether side jobs run on the worker thread."""
    return _threaded


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Run ``fn(*args)``; jobs run one at a time in submission order, so results never depend on timing."""
    global _pool
    if _threaded:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="twin")
        return _pool.submit(fn, *args)
    done: Future = Future()
    try:
        done.set_result(fn(*args))
    except BaseException as exc:  # re-raised by result(), as from the thread
        done.set_exception(exc)
    return done
