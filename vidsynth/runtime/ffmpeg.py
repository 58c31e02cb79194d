"""H.264 encoder processes fed raw RGB frames on stdin: one per mp4 file (FfmpegEncoder), or a
fragmented MP4 read back from ffmpeg's stdout as it is made (FragmentedMp4Encoder), for live
streams and pipes. Unlike imageio_ffmpeg.write_frames, they check ffmpeg's exit status: a full
disk or an option ffmpeg rejects is an error naming what ffmpeg said, never a corrupt file (no
moov atom) taken as done. Torch-free (imageio-ffmpeg provides the ffmpeg binary)."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import threading
from contextlib import suppress
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidsynth.errors import StorageError

CRF = 10  # imageio-ffmpeg's quality=8 for libx264, kept so files stay byte-identical
# A live stream is H.264 High profile, level 3.0 (what MediaSource is told), encoded without
# lookahead or B-frames so each frame leaves the encoder as soon as it is fed, one MP4
# fragment per frame; a keyframe starts every KEYFRAME_EVERY frames.
STREAM_CODECS = "avc1.64001e"
STREAM_MEDIA_TYPE = f'video/mp4; codecs="{STREAM_CODECS}"'
KEYFRAME_EVERY = 64
_STREAM_ARGS = (
    "-profile:v", "high", "-level:v", "3.0", "-tune", "zerolatency", "-g", str(KEYFRAME_EVERY),
    "-movflags", "empty_moov+default_base_moof+frag_every_frame", "-f", "mp4",
)  # fmt: skip
# Without these, ffmpeg reads up to dozens of frames to probe the input before it encodes the
# first (more at high frame rates); the input is fully described by the options already.
_NO_PROBING = ("-probesize", "32", "-analyzeduration", "0")
_READ_BYTES = 1 << 16
_STALL_S = 120.0  # an encoder that gives nothing back for this long has failed


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # a dependency of vidsynth: it ships the ffmpeg binary

    return imageio_ffmpeg.get_ffmpeg_exe()


def _command(size: int, fps: float, output: list[str], reading: tuple[str, ...] = ()) -> list[str]:
    rate = str(Fraction(fps).limit_denominator())
    return [
        ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size}x{size}",
        "-pix_fmt", "rgb24", "-r", rate, *reading, "-i", "-",
        "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p",
        "-crf", str(CRF), "-v", "error", *output,
    ]  # fmt: skip


class FfmpegEncoder:
    """One mp4 file at `path`."""

    def __init__(self, path: Path, size: int, fps: float) -> None:
        self._start(_command(size, fps, [str(path)]), subprocess.DEVNULL, path.name)

    def _start(self, command: list[str], stdout, name: str) -> None:
        self._name = name
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: ffmpeg never blocks on it
        # Its own session: Ctrl-C reaches vidsynth, which then stops the encoder itself.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=stdout, stderr=self._stderr, start_new_session=True
        )

    def send(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError:  # a broken pipe: ffmpeg has exited
            self._process.wait()
            self._fail()

    def close(self) -> None:
        """Ends the stream and waits; raises if ffmpeg did not write a complete file."""
        with suppress(OSError):  # a broken pipe: ffmpeg has exited, its status says why
            self._process.stdin.close()
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
            raise StorageError(f"no space left on the device while encoding {self._name} (ffmpeg: {last})")
        raise StorageError(
            f"ffmpeg could not write {self._name} (exit status {self._process.returncode}): {last}"
        )


class FragmentedMp4Encoder(FfmpegEncoder):
    """A fragmented MP4 made as frames are fed: `send` frames, then `take` the bytes that are
    ready, `finish` for the rest. Nothing touches the disk. ffmpeg completes a frame's
    fragment when the next frame arrives (or at the end), so after n frames `take` waits for
    the header and n - 1 fragments: the bytes a player can use, as soon as they exist."""

    def __init__(self, size: int, fps: float) -> None:
        self._start(_command(size, fps, [*_STREAM_ARGS, "-"], _NO_PROBING), subprocess.PIPE, "the stream")
        self._sent = 0
        self._ready = bytearray()  # complete top-level boxes not yet taken
        self._fragments = 0  # complete mdat boxes read so far
        self._header = False  # the moov box is out
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="ffmpeg-stream-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = bytearray()
        fd = self._process.stdout.fileno()
        while True:
            data = os.read(fd, _READ_BYTES)
            pending.extend(data)
            complete, kinds = _complete_boxes(pending)
            with self._changed:
                if complete:
                    self._ready.extend(pending[:complete])
                    del pending[:complete]
                    self._fragments += kinds.count(b"mdat")
                    self._header = self._header or b"moov" in kinds
                if not data:
                    self._ready.extend(pending)  # whatever is left at the end
                    self._ended = True
                self._changed.notify_all()
            if not data:
                return

    def send(self, frame: np.ndarray) -> None:
        super().send(frame)
        self._sent += 1

    def take(self) -> bytes:
        """Waits until every frame sent but the last has its fragment out; returns the bytes
        ready since the last call (the header comes with the first)."""
        self._process.stdin.flush()
        with self._changed:
            if not self._changed.wait_for(
                lambda: (self._header and self._fragments >= self._sent - 1) or self._ended, _STALL_S
            ):
                raise StorageError(f"ffmpeg gave nothing back for {_STALL_S:g} s while encoding {self._name}")
            return self._drain()

    def finish(self) -> bytes:
        """Ends the stream; the remaining bytes. Raises if ffmpeg failed."""
        self.close()
        self._reader.join()
        with self._changed:
            return self._drain()

    def kill(self) -> None:
        super().kill()
        self._reader.join()

    def _drain(self) -> bytes:
        data = bytes(self._ready)
        self._ready.clear()
        return data


def _complete_boxes(data: bytearray) -> tuple[int, list[bytes]]:
    """(bytes of the complete top-level MP4 boxes at the start of `data`, their types)."""
    end, kinds = 0, []
    while end + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[end : end + 8])
        if size < 8 or end + size > len(data):  # a box still arriving (64-bit sizes are not written)
            break
        end += size
        kinds.append(kind)
    return end, kinds
