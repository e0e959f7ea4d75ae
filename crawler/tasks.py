"""Background tasks owned by a component: stopped the same way everywhere."""

from __future__ import annotations

import asyncio

__all__ = ["stop_task"]


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end, without swallowing a cancellation
    of the caller itself (only the task's own CancelledError is absorbed)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
