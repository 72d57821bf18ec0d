"""Reading recordings: a path, ``-`` (standard input), a pipe or a file's bytes -> validated mono
float32 at 16 kHz, within the limits of :mod:`speakerverify.audio.limits`.

Every problem becomes an :class:`~speakerverify.errors.AudioError` whose message names the file and
the reason.

* the header is checked before anything is decoded (:func:`~speakerverify.audio.limits.check_header`);
* the file is then decoded block by block (about 1 MB of samples at a time), each block downmixed
  and fed to soxr's streaming resampler, and decoding stops as soon as it passes ``max_audio_s``,
  so memory is bounded by the limit's worth of 16 kHz samples, whatever the file or its header
  claims; a header without a total length (a FLAC or OGG streamed through a pipe) is decoded the
  same way;
* pipes, character devices such as ``/dev/stdin``, and ``-`` (standard input) have no size and
  cannot seek, so their bytes are read into memory first, at most
  :func:`~speakerverify.audio.limits.pipe_byte_limit` bytes, then decoded like a file.
"""

from __future__ import annotations

import io
import math
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from speakerverify.audio.limits import DEFAULT_MAX_AUDIO_S, check_header, check_limit, pipe_byte_limit, too_long
from speakerverify.audio.resample import Mono16kStream
from speakerverify.audio.validate import MIN_DURATION_S, SAMPLE_RATE, check_waveform
from speakerverify.errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
#: Samples (frames x channels) decoded per block.
BLOCK_SAMPLES = 1 << 18

_READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libsndfile messages repeat the file name; keep the reason only.
    if ":" in text and text.lower().startswith("error opening"):
        text = text.rsplit(":", 1)[-1].strip()
    return text[:120]


class _Bytes(io.BytesIO):
    """In-memory file bytes whose failed seeks answer -1, as ``lseek`` does, instead of raising.

    libsndfile asks some damaged headers (a cut AIFF) to seek before the start; soundfile's seek
    callback lets BytesIO's ValueError escape a cffi callback, which Python prints to stderr as an
    "Exception ignored" traceback while libsndfile carries on with a wrong position."""

    _failed = False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:
            if self.closed:
                raise
            self._failed = True  # soundfile reports tell() after seek(): make that -1
            return -1

    def tell(self) -> int:
        if self._failed:
            self._failed = False
            return -1
        return super().tell()


def _read_stream(stream: BinaryIO, name: str, max_audio_s: float) -> io.BytesIO:
    """The bytes of a pipe or stdin, at most :func:`pipe_byte_limit` of them.

    libsndfile needs to seek in most formats (FLAC and OGG from a pipe fail with "lost sync"), so
    a stream is read into memory first. Memory, not a temporary file: recordings of voices are
    biometric data, and a spooled copy on disk would outlive an interrupted run."""
    cap = pipe_byte_limit(max_audio_s)
    buf = _Bytes()
    while True:
        try:
            chunk = stream.read(1 << 20)
        except OSError as exc:
            raise AudioError(name, f"cannot be read ({exc.strerror or exc})") from None
        if not chunk:
            break
        buf.write(chunk)
        if buf.tell() > cap:
            raise AudioError(name, f"more than {cap / 1e6:.0f} MB from a pipe, the most read for {max_audio_s:g} s "
                                   "of audio; save it to a file")
    if buf.tell() == 0:
        raise AudioError(name, "file is empty")
    buf.seek(0)
    return buf


def _source(source: str | os.PathLike | bytes, name: str, max_audio_s: float) -> str | io.BytesIO:
    """What soundfile opens: a regular file's path, or the bytes of an upload, pipe or stdin."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise AudioError(name, "file is empty")
        return _Bytes(bytes(source))
    if os.fspath(source) == "-":
        return _read_stream(sys.stdin.buffer, name, max_audio_s)
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(name, "no such file") from None
    except OSError as exc:
        raise AudioError(name, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(name, "is a directory, not an audio file")
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise AudioError(name, "file is empty")
        return str(path)
    # A pipe, /dev/stdin on a pipe, a character device or a socket: no size, no seeking.
    try:
        with open(path, "rb") as stream:
            return _read_stream(stream, name, max_audio_s)
    except OSError as exc:
        raise AudioError(name, f"cannot be read ({exc.strerror or exc})") from None


def _open(source: str | os.PathLike | bytes, name: str, max_audio_s: float) -> tuple[sf.SoundFile, int | None]:
    """Open ``source`` and check its header; returns the open file and its frame count (None: unknown)."""
    handle = _source(source, name, max_audio_s)
    try:
        f = sf.SoundFile(handle)
    except PermissionError as exc:
        raise AudioError(name, f"cannot be read ({exc.strerror or exc})") from None
    except _READ_ERRORS as exc:
        raise AudioError(name, f"not a readable audio file ({_short(exc)})") from None
    try:
        frames = check_header(f.samplerate, f.channels, f.frames, name, max_audio_s)
    except BaseException:
        f.close()
        raise
    return f, frames


def probe(source: str | os.PathLike | bytes, name: str | None = None,
          max_audio_s: float = DEFAULT_MAX_AUDIO_S) -> float | None:
    """Check ``source`` from its header only (nothing is decoded); returns its length in seconds,
    or None when the header gives none. Raises :class:`AudioError` as :func:`load_audio` would."""
    label = name or source_label(source)
    f, frames = _open(source, label, check_limit(max_audio_s))
    with f:
        return None if frames is None else frames / f.samplerate


class _Output:
    """The 16 kHz samples decoded so far. With a length from the header they go straight into one
    array of that size (peak memory: the waveform itself); without one (or when the file holds
    more than its header said) into a list of blocks joined at the end (twice the waveform)."""

    def __init__(self, expected: int | None) -> None:
        self.array = None if expected is None else np.empty(expected, dtype=np.float32)
        self.size = 0
        self.parts: list[np.ndarray] = []

    def add(self, x: np.ndarray) -> None:
        if self.array is not None and self.size + len(x) <= len(self.array):
            self.array[self.size:self.size + len(x)] = x
        else:
            if self.array is not None:  # more than expected: keep what is there as the first block
                self.parts.append(self.array[:self.size])
                self.array = None
            self.parts.append(np.asarray(x, dtype=np.float32))
        self.size += len(x)

    def result(self) -> np.ndarray:
        if self.array is None:
            return np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.float32)
        spare = len(self.array) - self.size
        # A header that claimed more than the file holds (a cut file): don't keep the unused tail.
        return self.array[:self.size].copy() if spare > (1 << 18) else self.array[:self.size]


def _decode(f: sf.SoundFile, frames: int | None, name: str, max_audio_s: float) -> np.ndarray:
    """Decode ``f`` block by block into mono float32 at 16 kHz, refusing it past ``max_audio_s``."""
    rate, channels = f.samplerate, f.channels
    max_frames = math.floor(max_audio_s * rate)
    block = np.empty((max(1, BLOCK_SAMPLES // channels), channels), dtype=np.float32)
    stream = Mono16kStream(rate)
    out = _Output(None if frames is None else math.ceil(frames * SAMPLE_RATE / rate) + 16)
    total, done = 0, False
    while not done:
        if frames is None:
            block.fill(np.nan)
        try:
            got = f.read(out=block)
        except _READ_ERRORS as exc:
            if frames is None:
                # A stream without a length: libFLAC cannot seek to its (unknown) end, and soundfile
                # seeks there after the last read, so that read raises although it decoded its samples
                # into the block. libsndfile decodes no NaN from integer PCM or Vorbis/Opus, so the
                # first NaN row marks where the samples end. (soundfile offers no read without a seek.)
                filled = ~np.isnan(block[:, 0])
                got = block[: int(filled.argmin()) if not filled.all() else len(block)]
                if total == 0 and len(got) == 0:  # not one sample: a broken stream, not an empty one
                    raise AudioError(name, f"not a readable audio file ({_short(exc)})") from None
                done = True
            else:
                raise AudioError(name, f"not a readable audio file (damaged or cut short after "
                                       f"{total / rate:.1f} s: {_short(exc)})") from None
        n = len(got)
        if n == 0:
            break
        total += n
        if total > max_frames:
            raise too_long(name, None if frames is None else total / rate, max_audio_s)
        out.add(stream.add(got))
    out.add(stream.flush())
    if total == 0:
        raise AudioError(name, "contains no samples")
    return out.result()


def source_label(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<upload>"
    return "<stdin>" if os.fspath(source) == "-" else str(source)  # type: ignore[arg-type]


def load_audio(source: str | os.PathLike | bytes, *, min_duration_s: float = MIN_DURATION_S,
               name: str | None = None, max_audio_s: float = DEFAULT_MAX_AUDIO_S) -> np.ndarray:
    """Read ``source`` as mono float32 at 16 kHz, validated: a path, ``"-"`` for standard input
    (a file named ``-`` is ``./-``), or the bytes of a file. Longer than ``max_audio_s`` seconds,
    or a header outside the accepted rates and channels, is an :class:`AudioError` before decoding."""
    label = name or source_label(source)
    limit = check_limit(max_audio_s)
    f, frames = _open(source, label, limit)
    with f:
        wave = _decode(f, frames, label, limit)
    return check_waveform(wave, label, min_duration_s)


def is_audio_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(AUDIO_EXTENSIONS)
