"""Frame rates a video file can carry. GIF stores frame delays in whole hundredths of a second
(Pillow truncates the milliseconds it is given), so above 100 fps a delay would become 0,
which players show at an arbitrary speed. Torch-free."""
from __future__ import annotations

import math
from typing import Optional

MIN_FPS = 0.01  # one frame per 100 s
MAX_FPS = 1000.0
MAX_GIF_FPS = 100.0  # a 10 ms delay, the shortest GIF stores


def fps_problem(fps: object, fmt: str) -> Optional[str]:
    """Why `fps` cannot be written as `fmt`, or None."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        return f"fps must be a finite number, got {fps!r}"
    if not MIN_FPS <= fps <= MAX_FPS:
        return f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps:g}"
    if fmt == "gif" and fps > MAX_GIF_FPS:
        return f"gif frame delays are whole hundredths of a second: fps must be at most {MAX_GIF_FPS:g} for gif, got {fps:g}"
    return None


def gif_frame_ms(fps: float) -> int:
    """The delay per gif frame: 1000/fps rounded to the nearest 10 ms, at least 10 ms."""
    return 10 * max(1, round(100.0 / fps))
