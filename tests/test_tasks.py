"""crawler.tasks: stop_task cancels a background task and waits for it, and never swallows a
cancellation of its caller."""

from __future__ import annotations

import asyncio

import pytest

from crawler.tasks import stop_task


async def test_stopping_no_task_is_a_no_op() -> None:
    await stop_task(None)


async def test_the_task_is_cancelled_and_its_cleanup_has_run_on_return() -> None:
    events: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # a cleanup that itself awaits
            events.append("cleaned up")

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled() and events == ["cleaned up"]


async def test_a_task_that_failed_before_it_was_stopped_raises_its_error() -> None:
    async def worker() -> None:
        raise ValueError("worker bug")

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="worker bug"):
        await stop_task(task)


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    stopping = asyncio.Event()
    after: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await asyncio.sleep(10)  # a slow cleanup, cut short by the caller's cancel
            raise

    async def caller(task: asyncio.Task[None]) -> None:
        await stop_task(task)
        after.append("went on")  # never: the caller itself was cancelled

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    outer = asyncio.create_task(caller(task))
    await stopping.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled() and task.cancelled() and after == []
