"""Video files from uint8 frames: H.264 mp4, gif, or one png contact sheet. Writers take frames
as they are made, batch by batch and chunk by chunk, so an mp4 of any length streams to its
encoder, into the staging directory that output.py commits. gif and png are encoded in memory,
then written: a full disk is then a plain OSError, where imageio writing the file itself leaves a
half-closed plugin that fails again when collected. Torch-free (imageio, imageio-ffmpeg)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vidsynth.runtime.ffmpeg import FfmpegEncoder, FragmentedMp4Encoder

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
        self._names: list[str] = []  # the files made, in order

    @abstractmethod
    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        """pixels (b, t, H, W, 3) uint8: frames first_frame.. of videos first_video.."""

    def end_videos(self, first_video: int, stop_video: int) -> None:
        """Videos first_video..stop_video-1 have all their frames."""

    def finish(self) -> list[str]:
        """Writes what is still pending; the names of the files made."""
        return list(self._names)

    def abort(self) -> None:
        """Releases resources after a failure (files are left to the staging cleanup)."""


class Mp4Writer(VideoWriter):
    """One ffmpeg process per open video, fed frame by frame: H.264, yuv420p."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[int, FfmpegEncoder] = {}

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        complete = first_frame + pixels.shape[1] == self.n_frames
        for index, frames in enumerate(pixels, start=first_video):
            if index not in self._open:
                name = video_name(index, "mp4")
                self._open[index] = FfmpegEncoder(self.directory / name, self.size, self.fps)
                self._names.append(name)
            for frame in frames:
                self._open[index].send(frame)
            if complete:  # one encoder at a time unless videos are streamed side by side
                self._open.pop(index).close()

    def end_videos(self, first_video: int, stop_video: int) -> None:
        for index in range(first_video, stop_video):
            if index in self._open:
                self._open.pop(index).close()

    def finish(self) -> list[str]:
        self.end_videos(0, self.n_videos)
        return super().finish()

    def abort(self) -> None:
        for encoder in self._open.values():
            encoder.kill()  # its partial file goes with the staging directory
        self._open.clear()


class Mp4StreamWriter(VideoWriter):
    """One video as a fragmented MP4 written to `sink` (stdout, a pipe) while it is made."""

    def __init__(self, sink: BinaryIO, n_frames: int, fps: float, size: int) -> None:
        super().__init__(Path(), 1, n_frames, fps, size)
        self.sink = sink
        self._encoder = FragmentedMp4Encoder(size, fps)

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        for frame in pixels[0]:
            self._encoder.send(frame)
        self._write(self._encoder.take())

    def finish(self) -> list[str]:
        self._write(self._encoder.finish())
        return []

    def abort(self) -> None:
        self._encoder.kill()

    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self.sink.flush()


class GifWriter(VideoWriter):
    """Gifs are encoded whole, so each video's frames are kept until it is complete."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._frames: dict[int, list[np.ndarray]] = {}

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        for index, frames in enumerate(pixels, start=first_video):
            self._frames.setdefault(index, []).append(frames)

    def end_videos(self, first_video: int, stop_video: int) -> None:
        import imageio.v3 as iio

        delay_ms = 10 * max(1, round(100.0 / self.fps))  # 1000/fps to the nearest 10 ms, at least 10
        for index in range(first_video, stop_video):
            frames = np.concatenate(self._frames.pop(index))
            name = video_name(index, "gif")
            encoded = iio.imwrite("<bytes>", frames, extension=".gif", duration=delay_ms, loop=0)
            (self.directory / name).write_bytes(encoded)
            self._names.append(name)


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

        (self.directory / SHEET_NAME).write_bytes(iio.imwrite("<bytes>", self._sheet, extension=".png"))
        return [SHEET_NAME]


WRITERS = {"mp4": Mp4Writer, "gif": GifWriter, "png": SheetWriter}
