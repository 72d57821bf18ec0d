"""Data sources: folders, CSV manifests, Kaldi wav.scp/utt2spk, the seed's pickles, trial lists.

Every source yields :class:`Utterance` records (a path, or an in-memory waveform, plus a speaker).
"""

from __future__ import annotations

import csv
import hashlib
import io
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speakerverify.audio import is_audio_path
from speakerverify.errors import DataError


@dataclass(frozen=True)
class Utterance:
    key: str
    speaker: str
    path: Path | None = None
    wave: np.ndarray | None = field(default=None, compare=False, repr=False)
    duration_s: float | None = None
    split: str | None = None


def from_folder(root: str | Path) -> list[Utterance]:
    """``root/<speaker>/<utt>.<ext>`` (audio files in speaker sub-folders, any depth below them)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    utts = []
    for spk_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(spk_dir.rglob("*")):
            if path.is_file() and is_audio_path(path):
                utts.append(Utterance(key=str(path.relative_to(root)), speaker=spk_dir.name, path=path))
    if not utts:
        raise DataError(f"{root}: no audio files found in <speaker>/ sub-folders")
    return utts


def from_manifest(manifest: str | Path, splits: Sequence[str] | None = None) -> list[Utterance]:
    """A CSV manifest with columns ``path,speaker,duration_s,split`` (paths relative to its folder)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataError(f"{manifest}: no such manifest")
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "speaker"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        utts = []
        for row in reader:
            split = row.get("split") or None
            if splits is not None and split not in splits:
                continue
            dur = row.get("duration_s")
            utts.append(Utterance(key=row["path"], speaker=row["speaker"],
                                  path=manifest.parent / row["path"],
                                  duration_s=float(dur) if dur else None, split=split))
    return utts


def from_kaldi(data_dir: str | Path) -> list[Utterance]:
    """A Kaldi data directory with ``wav.scp`` (``utt path``) and ``utt2spk``. Piped commands are refused."""
    data_dir = Path(data_dir)
    scp, u2s = data_dir / "wav.scp", data_dir / "utt2spk"
    for f in (scp, u2s):
        if not f.is_file():
            raise DataError(f"{f}: no such file")
    speakers = dict(_two_columns(u2s))
    utts = []
    for utt, path in _two_columns(scp):
        if path.rstrip().endswith("|"):
            raise DataError(f"{scp}: utterance {utt} is a piped command; only file paths are supported")
        if utt not in speakers:
            raise DataError(f"{u2s}: no speaker for utterance {utt}")
        p = Path(path)
        utts.append(Utterance(key=utt, speaker=speakers[utt], path=p if p.is_absolute() else data_dir / p))
    return utts


def _two_columns(path: Path) -> Iterable[tuple[str, str]]:
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}:{n}: expected two columns")
        yield parts[0], parts[1].strip()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Accepts numpy arrays and nothing else, so a malicious pickle cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are accepted")


def load_array_pickle(path: str | Path) -> np.ndarray:
    """Load a pickled numpy array safely (restricted unpickler)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # corrupt or truncated pickles raise many types
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, np.ndarray):
        raise DataError(f"{path}: expected a numpy array, found {type(obj).__name__}")
    return obj


def from_seed_pickle(path: str | Path, clips_per_speaker: int = 10,
                     speaker_names: Sequence[str] | None = None) -> list[Utterance]:
    """The seed's ``trs.pkl``/``tes.pkl``: float32 (N, 16000), rows grouped by speaker in blocks."""
    arr = load_array_pickle(path)
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array of clips, got shape {arr.shape}")
    if arr.shape[0] % clips_per_speaker:
        raise DataError(f"{path}: {arr.shape[0]} rows is not a multiple of {clips_per_speaker}")
    n_spk = arr.shape[0] // clips_per_speaker
    if speaker_names is None:
        names_file = Path(path).with_name(Path(path).stem + "_speakers.txt")
        speaker_names = names_file.read_text().split() if names_file.is_file() else None
    if speaker_names is None or len(speaker_names) != n_spk:
        speaker_names = [f"spk{i:03d}" for i in range(n_spk)]
    arr = arr.astype(np.float32, copy=False)
    return [Utterance(key=f"{Path(path).name}#{i}", speaker=speaker_names[i // clips_per_speaker],
                      wave=arr[i], duration_s=arr.shape[1] / 16000) for i in range(arr.shape[0])]


@dataclass(frozen=True)
class Trial:
    label: int
    enroll: str
    test: str


#: The trial lists of ../shared/data/trials (``trials/NAME.txt``): dev lists choose models, epochs,
#: thresholds and calibration; test lists are reported only.
DEV_LISTS = ["libri-train-clean-dev", "speechocean762-dev", "speech-commands-dev"]
TEST_LISTS = ["libri-train-clean-test", "libri-test-other-test", "fsdd-test", "speechocean762-test",
              "speech-commands-test", "dspspeech20-test", "dspspeech20-crosslang-test"]


def read_trials(path: str | Path) -> list[Trial]:
    """``label enroll test`` lines (VoxCeleb style, label first)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such trial list")
    trials = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise DataError(f"{path}:{n}: expected 'label enroll test' with label 0 or 1")
        trials.append(Trial(int(parts[0]), parts[1], parts[2]))
    if not trials:
        raise DataError(f"{path}: no trials")
    return trials


def read_index_pairs(path: str | Path) -> list[tuple[int, int, int]]:
    """The seed protocol's ``label i j`` pairs (row indices)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file")
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                label, i, j = (int(x) for x in line.split())
            except ValueError:
                raise DataError(f"{path}:{n}: expected 'label i j' integers") from None
            pairs.append((label, i, j))
    return pairs


def load_source(spec: str | Path, splits: Sequence[str] | None = None) -> list[Utterance]:
    """Dispatch on what ``spec`` is: a .csv manifest, a .pkl array, a Kaldi dir, or a speaker folder."""
    p = Path(spec)
    if p.suffix == ".csv":
        return from_manifest(p, splits)
    if p.suffix == ".pkl":
        return from_seed_pickle(p)
    if p.is_dir() and (p / "wav.scp").is_file():
        return from_kaldi(p)
    return from_folder(p)


def manifest_hash(utts: Sequence[Utterance]) -> str:
    """A stable hash of what a training run read: keys, speakers and file sizes (or array bytes)."""
    h = hashlib.sha256()
    for u in sorted(utts, key=lambda u: u.key):
        h.update(f"{u.key}\t{u.speaker}\t".encode())
        if u.wave is not None:
            h.update(hashlib.sha256(np.ascontiguousarray(u.wave).tobytes()).digest())
        elif u.path is not None and u.path.exists():
            h.update(str(u.path.stat().st_size).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
