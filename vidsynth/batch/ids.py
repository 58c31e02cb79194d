"""The ids of the videos still to make, streamed to Ray Data a model call's worth at a time: a
job of any --count starts at once and holds in memory only the ids in flight and the finished
ones (never a list of all the videos to make), and each finished video reaches the driver
when its call ends (an actor hands back a block only when all of it is made)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask


def _blocks(count: int, done: np.ndarray, rows: int) -> Iterator[Any]:
    import pyarrow as pa

    for first in range(0, count, rows):
        stop = min(count, first + rows)
        low, high = np.searchsorted(done, [first, stop])
        ids = np.setdiff1d(np.arange(first, stop, dtype=np.int64), done[low:high], assume_unique=True)
        if len(ids):
            yield pa.table({"id": ids})


class PendingIds(Datasource):
    """Ids 0 .. count-1 less those done, in order, in blocks of `block_rows`."""

    def __init__(self, count: int, done: np.ndarray, block_rows: int) -> None:
        super().__init__()
        self.count = count
        self.block_rows = block_rows
        self.done = np.unique(done[(done >= 0) & (done < count)]).astype(np.int64)

    def estimate_inmemory_data_size(self) -> None:
        return None  # what Ray Data would plan from it (blocks per byte) is not how ids flow

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        # One task, whatever the parallelism: ids cost nothing to make, and a task yields its
        # blocks at once, so every worker gets a call as soon as it is up. Ranges split over
        # tasks arrive as those tasks' worker processes start, and meanwhile the first worker
        # up takes every call.
        rows = self.count - len(self.done)
        if rows == 0:
            return []
        metadata = BlockMetadata(num_rows=rows, size_bytes=8 * rows, input_files=None, exec_stats=None)
        blocks = partial(_blocks, self.count, self.done, self.block_rows)
        return [ReadTask(blocks, metadata, per_task_row_limit=per_task_row_limit)]
