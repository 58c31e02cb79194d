"""One H.264 encoder process per mp4, fed raw RGB frames on stdin. Unlike
imageio_ffmpeg.write_frames, it checks ffmpeg's exit status: a full disk or an option ffmpeg
rejects is an error naming what ffmpeg said, never a corrupt file (no moov atom) taken as
done. Torch-free (imageio-ffmpeg provides the ffmpeg binary)."""

from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidsynth.errors import StorageError

CRF = 10  # imageio-ffmpeg's quality=8 for libx264, kept so files stay byte-identical


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # a dependency of vidsynth: it ships the ffmpeg binary

    return imageio_ffmpeg.get_ffmpeg_exe()


class FfmpegEncoder:
    def __init__(self, path: Path, size: int, fps: float) -> None:
        self.path = Path(path)
        rate = str(Fraction(fps).limit_denominator())
        command = [
            ffmpeg_exe(),
            "-y",
            "-f",
            "rawvideo",
            "-vcodec",
            "rawvideo",
            "-s",
            f"{size}x{size}",
            "-pix_fmt",
            "rgb24",
            "-r",
            rate,
            "-i",
            "-",
            "-an",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            str(CRF),
            "-v",
            "error",
            str(self.path),
        ]
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg never blocks on it
        # Its own session: Ctrl-C reaches vidsynth, which then stops the encoder itself.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )

    def send(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError):
            self._process.wait()
            self._fail()

    def close(self) -> None:
        """Ends the stream and waits; raises if ffmpeg did not write a complete file."""
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if self._process.wait() != 0:
            self._fail()
        self._stderr.close()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stderr.close()

    def _fail(self) -> None:
        self._stderr.seek(0)
        said = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        self._stderr.close()
        last = said[-1] if said else "no message"
        if any("No space left on device" in line for line in said):
            raise StorageError(
                f"no space left on the device while encoding {self.path.name} (ffmpeg: {last})"
            )
        raise StorageError(
            f"ffmpeg could not write {self.path.name} (exit status {self._process.returncode}): {last}"
        )
