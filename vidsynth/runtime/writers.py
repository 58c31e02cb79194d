"""Video files from uint8 frames: H.264 mp4, gif, or one png contact sheet, and the output
directory they land in.

Writers take frames as they are made, batch by batch and chunk by chunk, so an mp4 of any
length streams to its encoder. They write into a hidden staging directory inside the output
directory; the finished files are renamed into place only when every one of them is complete,
so a failure leaves nothing half-written (and leaves files from earlier runs untouched).
Torch-free (imageio, imageio-ffmpeg).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vidsynth.errors import InputError, choice_error

SHEET_NAME = "sheet.png"


def video_name(index: int, fmt: str) -> str:
    return f"video_{index:03d}.{fmt}"


class VideoWriter(ABC):
    def __init__(self, directory: Path, n_videos: int, n_frames: int, fps: float, size: int) -> None:
        self.directory = Path(directory)
        self.n_videos = n_videos
        self.n_frames = n_frames
        self.fps = fps
        self.size = size

    @abstractmethod
    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        """pixels (b, t, H, W, 3) uint8: frames first_frame.. of videos first_video.."""

    def end_videos(self, first_video: int, stop_video: int) -> None:
        """Videos first_video..stop_video-1 have all their frames."""

    @abstractmethod
    def finish(self) -> list[str]:
        """Writes what is still pending; the names of the files made."""

    def abort(self) -> None:
        """Releases resources after a failure (files are left to the staging cleanup)."""


class Mp4Writer(VideoWriter):
    """One ffmpeg process per open video, fed frame by frame: H.264, yuv420p."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[int, object] = {}
        self._names: list[str] = []

    def _encoder(self, index: int):
        import imageio_ffmpeg

        if index not in self._open:
            name = video_name(index, "mp4")
            encoder = imageio_ffmpeg.write_frames(
                str(self.directory / name),
                (self.size, self.size),
                pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p",
                fps=self.fps,
                codec="libx264",
                quality=8,
                macro_block_size=16,
                ffmpeg_log_level="error",
            )
            encoder.send(None)  # start the process
            self._open[index] = encoder
            self._names.append(name)
        return self._open[index]

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        complete = first_frame + pixels.shape[1] == self.n_frames
        for offset, frames in enumerate(pixels):
            encoder = self._encoder(first_video + offset)
            for frame in frames:
                encoder.send(frame)
            if complete:  # one encoder at a time unless videos are streamed side by side
                self._open.pop(first_video + offset).close()

    def end_videos(self, first_video: int, stop_video: int) -> None:
        for index in range(first_video, stop_video):
            if index in self._open:
                self._open.pop(index).close()

    def finish(self) -> list[str]:
        while self._open:
            _, encoder = self._open.popitem()
            encoder.close()
        return list(self._names)

    def abort(self) -> None:
        for encoder in self._open.values():
            try:
                encoder.close()
            except Exception:  # the failure being handled matters more than this one
                pass
        self._open.clear()


class GifWriter(VideoWriter):
    """Gifs are encoded whole, so each video's frames are kept until it is complete."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._frames: dict[int, list[np.ndarray]] = {}
        self._names: list[str] = []

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        for offset, frames in enumerate(pixels):
            self._frames.setdefault(first_video + offset, []).append(frames)

    def end_videos(self, first_video: int, stop_video: int) -> None:
        import imageio.v3 as iio

        for index in range(first_video, stop_video):
            frames = np.concatenate(self._frames.pop(index))
            name = video_name(index, "gif")
            iio.imwrite(self.directory / name, frames, extension=".gif", duration=1000.0 / self.fps, loop=0)
            self._names.append(name)

    def finish(self) -> list[str]:
        return list(self._names)


class SheetWriter(VideoWriter):
    """One png: a row per video, a column per frame."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        s = self.size
        self._sheet = np.zeros((self.n_videos * s, self.n_frames * s, 3), dtype=np.uint8)

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        s = self.size
        b, t = pixels.shape[:2]
        # (b, t, s, s, 3) -> (b*s, t*s, 3): rows of videos, columns of frames
        block = pixels.transpose(0, 2, 1, 3, 4).reshape(b * s, t * s, 3)
        self._sheet[first_video * s : (first_video + b) * s, first_frame * s : (first_frame + t) * s] = block

    def finish(self) -> list[str]:
        import imageio.v3 as iio

        iio.imwrite(self.directory / SHEET_NAME, self._sheet, extension=".png")
        return [SHEET_NAME]


WRITERS = {"mp4": Mp4Writer, "gif": GifWriter, "png": SheetWriter}


def open_writer(fmt: str, directory: Path, n_videos: int, n_frames: int, fps: float, size: int) -> VideoWriter:
    if fmt not in WRITERS:
        raise choice_error(InputError, "format", fmt, sorted(WRITERS))
    return WRITERS[fmt](directory, n_videos, n_frames, fps, size)


def check_output_dir(directory: Path) -> None:
    """Fails early, before any work, when `directory` cannot hold the output."""
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise InputError(f"output {directory} exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InputError(f"output directory {directory} is not writable")
        return
    ancestor = directory.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot create output directory {directory}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot create output directory {directory}: {ancestor} is not writable")


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories that must be made for `directory` to exist, deepest first."""
    missing = []
    path = directory.resolve()
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


@contextmanager
def staged_output(directory: Path) -> Iterator[tuple[Path, list[str]]]:
    """Yields (staging directory, names list). On success the files named in the list are
    renamed from staging into `directory`; on failure staging is removed, and so is
    `directory` if this call created it."""
    directory = Path(directory)
    check_output_dir(directory)
    created = _missing_dirs(directory)
    if created:
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create output directory {directory}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(prefix=".vidsynth-tmp-", dir=directory))
    names: list[str] = []
    try:
        yield staging, names
        for name in names:
            os.replace(staging / name, directory / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for made in created:  # deepest first; only while still empty
            try:
                made.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(staging, ignore_errors=True)
