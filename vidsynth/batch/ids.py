"""The ids of the videos still to make, streamed to Ray Data a model call's worth at a time: a
job of any --count starts at once and holds in memory only the ids in flight and the finished
ones (never a list of all the videos to make), and each finished video reaches the driver
when its call ends (an actor hands back a block only when all of it is made)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

MAX_READ_TASKS = 64  # each a contiguous range of ids, read lazily: any count takes this many


def _blocks(start: int, stop: int, skip: np.ndarray, rows: int) -> Iterator[Any]:
    import pyarrow as pa

    for first in range(start, stop, rows):
        ids = np.arange(first, min(stop, first + rows), dtype=np.int64)
        ids = ids[~np.isin(ids, skip)]
        if len(ids):
            yield pa.table({"id": ids})


class PendingIds(Datasource):
    """Ids 0 .. count-1 less those done, in read tasks of contiguous ranges."""

    def __init__(self, count: int, done: np.ndarray, block_rows: int) -> None:
        super().__init__()
        self.count = count
        self.block_rows = block_rows
        self.done = np.unique(done[(done >= 0) & (done < count)]).astype(np.int64)

    def estimate_inmemory_data_size(self) -> None:
        return None  # what Ray Data would plan from it (blocks per byte) is not how ids flow

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        tasks = max(1, min(parallelism, MAX_READ_TASKS, math.ceil(self.count / self.block_rows)))
        span = math.ceil(self.count / tasks)
        read_tasks = []
        for start in range(0, self.count, span):
            stop = min(self.count, start + span)
            skip = self.done[np.searchsorted(self.done, start) : np.searchsorted(self.done, stop)]
            rows = stop - start - len(skip)
            if rows == 0:
                continue
            metadata = BlockMetadata(num_rows=rows, size_bytes=8 * rows, input_files=None, exec_stats=None)
            read_tasks.append(
                ReadTask(
                    partial(_blocks, start, stop, skip, self.block_rows),
                    metadata,
                    per_task_row_limit=per_task_row_limit,
                )
            )
        return read_tasks
