"""The list of recordings to embed: one ``PATH`` or ``KEY PATH`` a line (Kaldi ``wav.scp`` style);
blank lines and ``#`` comments are skipped. The utterance key is the first column when there are
two, else the path as written. Its hash (of the parsed entries) ties every shard to one list."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from speakerverify.embedding.outputs import check_keys
from speakerverify.errors import DataError


@dataclass(frozen=True)
class FileList:
    source: Path
    keys: list[str]
    paths: list[str]

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for key, path in zip(self.keys, self.paths, strict=True):
            h.update(f"{key}\t{path}\n".encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.paths)


def read_file_list(path: Path) -> FileList:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file list ({type(exc).__name__})") from None
    keys, paths = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(maxsplit=1)
        keys.append(fields[0])
        paths.append(fields[-1])
    if not paths:
        raise DataError(f"{path}: the file list names no recordings")
    check_keys(keys, str(path))
    return FileList(Path(path), keys, paths)
