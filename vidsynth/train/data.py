"""Training data: a folder of clips, one class per subfolder.

Each file is either a video (mp4, avi, gif: read with imageio) or a MoCoGAN-style strip (one
image H x (H*T) with the T square frames side by side). The layout is detected from the
file's content, not its name: the public actions data are PNG strips named `.jpg`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsynth.errors import DataError

# Container -> its leading bytes, as a regular expression.
_MAGIC = {
    "png": rb"\x89PNG\r\n\x1a\n",
    "jpeg": rb"\xff\xd8\xff",
    "gif": rb"GIF8[79]a",
    "bmp": rb"BM",
    "mp4": rb"....ftyp",
    "avi": rb"RIFF....AVI ",
    "mkv": rb"\x1a\x45\xdf\xa3",
}
STILL_FORMATS = ("png", "jpeg", "bmp")  # strips: single still images; the others are videos


def sniff_format(path: Path) -> str | None:
    """The file's container from its first bytes, or None when it is not one we read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    return next((name for name, magic in _MAGIC.items() if re.match(magic, head, re.DOTALL)), None)


def _to_rgb(frames: np.ndarray, path: Path) -> np.ndarray:
    """(T, H, W[, C]) gray, gray+alpha, RGB or RGBA at 1, 8 or 16 bits -> (T, H, W, 3) uint8."""
    if frames.ndim == 3:
        frames = frames[..., None]
    channels = frames.shape[-1]
    if channels in (2, 4):
        frames = frames[..., :-1]  # alpha: the actions strips carry a constant one
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] != 3:
        raise DataError(f"{path}: {channels} channels per pixel; expected gray, gray+alpha, RGB or RGBA")
    if frames.dtype == np.uint16:  # 16-bit PNG: 65535 is white, as 255 is at 8 bits
        frames = ((frames.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif frames.dtype == np.bool_:
        frames = frames.astype(np.uint8) * 255
    elif frames.dtype != np.uint8:
        raise DataError(f"{path}: pixels of type {frames.dtype}; expected 8- or 16-bit images")
    return np.ascontiguousarray(frames)


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """One clip as (T, H, W, 3) uint8. A still image is split into square frames along its
    width (MoCoGAN strips); a video or animated GIF gives its frames."""
    import imageio.v3 as iio

    path = Path(path)
    kind = sniff_format(path)
    if kind is None:
        raise DataError(
            f"{path}: not an image strip or video (expected PNG/JPEG/BMP strips or GIF/MP4/AVI videos)"
        )
    try:
        if kind in STILL_FORMATS:
            image = np.atleast_3d(iio.imread(path))  # (H, W, C), gray too
            height, width = image.shape[:2]
            if width % height != 0:
                raise DataError(
                    f"{path}: a strip must be H x (H*T) with square frames side by side; "
                    f"found {height}x{width}, not a multiple of {height}"
                )
            n_frames = width // height
            frames = image.reshape(height, n_frames, height, image.shape[2]).transpose(1, 0, 2, 3)
        elif kind == "gif":
            frames = iio.imread(path, index=None)
            if frames.ndim == 3 and frames.shape[-1] in (3, 4):
                frames = frames[None]
        else:
            frames = iio.imread(path, index=None, plugin="FFMPEG")
    except DataError:
        raise
    except Exception as exc:  # imageio raises many types for damaged files
        raise DataError(f"{path}: cannot read {kind} data ({type(exc).__name__}: {exc})") from None
    frames = _to_rgb(np.asarray(frames), path)
    if frames.shape[0] < 1:
        raise DataError(f"{path}: holds no frames")
    return frames


@dataclass
class ClipDataset:
    """All clips in memory as uint8 (T_i, H, W, 3) arrays, with their class index."""

    clips: list[np.ndarray]
    labels: np.ndarray  # (N,) int64
    classes: list[str]  # subfolder name of each class index ([] for an unlabelled folder)
    paths: list[str]

    @property
    def n_categories(self) -> int:
        return len(self.classes)

    @property
    def frame_size(self) -> int:
        return int(self.clips[0].shape[1])

    @property
    def n_frames(self) -> int:
        return int(sum(c.shape[0] for c in self.clips))


def _class_sort_key(name: str) -> tuple:
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def load_folder(root: str | os.PathLike) -> ClipDataset:
    """Reads every clip under `root`. Subfolders are classes (sorted, numerically when their
    names are numbers); files directly in `root` make an unlabelled set. All problems are
    collected and reported in one DataError."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    visible = [path for path in root.iterdir() if not path.name.startswith(".")]
    subdirs = sorted((d for d in visible if d.is_dir()), key=lambda d: _class_sort_key(d.name))
    if subdirs:  # a class per subfolder that holds files
        found = [
            sorted(f for f in d.rglob("*") if f.is_file() and not f.name.startswith(".")) for d in subdirs
        ]
        groups = [group for group in found if group]
        classes = [d.name for d, group in zip(subdirs, found) if group]
    else:
        groups, classes = [sorted(f for f in visible if f.is_file())], []
    files = [(index, f) for index, group in enumerate(groups) for f in group]
    if not files:
        raise DataError(
            f"data folder {root} holds no clips (expected image strips or videos, one class per subfolder)"
        )

    clips, problems, sizes = [], [], {}
    for _, path in files:
        try:
            clips.append(read_clip(path))
        except DataError as exc:
            problems.append(str(exc))
            continue
        sizes.setdefault(clips[-1].shape[1:3], []).append(str(path))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DataError(f"{len(problems)} unreadable file(s) in {root}: {shown}")
    if len(sizes) > 1:
        described = ", ".join(f"{h}x{w} ({len(ps)} files, e.g. {ps[0]})" for (h, w), ps in sizes.items())
        raise DataError(f"frames of mixed sizes in {root}: {described}; all clips must share one frame size")
    ((height, width),) = sizes
    if height != width:
        raise DataError(f"frames in {root} are {height}x{width}; training needs square frames")
    labels = np.asarray([index for index, _ in files], dtype=np.int64)  # all 0 in an unlabelled folder
    return ClipDataset(clips, labels, classes, [str(path) for _, path in files])


def synthetic_dataset(n_categories: int, size: int, n_frames: int = 24, n_clips: int = 8) -> ClipDataset:
    """Moving coloured squares, for --dry-run and tests: no files needed."""
    rng = np.random.default_rng(0)
    clips, labels = [], []
    for i in range(n_clips):
        label = i % max(n_categories, 1)
        video = np.full((n_frames, size, size, 3), 40, dtype=np.uint8)
        side = size // 4
        colour = rng.integers(80, 256, size=3, dtype=np.uint8)
        x, y = rng.integers(0, size - side, size=2)
        dx, dy = [(1, 0), (0, 1), (-1, 0), (0, -1)][label % 4]
        for t in range(n_frames):
            px = int((x + dx * t) % (size - side))
            py = int((y + dy * t) % (size - side))
            video[t, py : py + side, px : px + side] = colour
        clips.append(video)
        labels.append(label)
    classes = [str(c) for c in range(n_categories)]
    return ClipDataset(
        clips, np.asarray(labels, dtype=np.int64), classes, [f"<synthetic {i}>" for i in range(n_clips)]
    )
