"""The speaker store: enrolled speakers in an embedded SQLite database.

One file holds, per speaker, its enrollment clips (embedding, source name, duration, time added,
and optionally the 16 kHz audio as FLAC so the store can be re-embedded with a new model), the
speaker's model embedding (the normalised mean of its clips' embeddings) and the model ident
(``name@version``) that made every embedding. API keys for the service live in the same file
(:mod:`speakerverify.keys`).

Safety: the database runs in WAL mode with ``synchronous=FULL``; every change (an enrollment, a
removal, a re-embedding) is one transaction, so a crash or ``kill -9`` at any moment loses no
earlier change and never leaves a half-written speaker. Embeddings are computed before the write
transaction opens, so writers hold the lock only for the inserts.

Models: a store belongs to one embedding space (the ``model`` meta value, set by the first
enrollment). Scoring, enrolling or identifying with a verifier of another model is refused with a
clear message; ``speakerverify store reembed --model M`` moves the store to model M, re-embedding
every speaker whose audio was kept and listing those who must re-enroll (they stay in the store,
marked stale, and are left out of identification until they do).

Outlier rule for enrollment (with at least three usable clips): each clip's cosine to the
normalised mean of the *other* clips (leave-one-out) is compared with the median of those
cosines over the speaker's clips; a clip more than ``max(0.2, 3 x 1.4826 x MAD)`` below that
median, *and* which the model would not accept as the others' speaker (its score against their
mean is below the model's threshold), is set aside as "too unlike the rest", as long as at least
two clips (and more than half) remain. With two clips, nothing is dropped; a warning is given when
they score below the threshold against each other.
"""

from __future__ import annotations

import io
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from speakerverify.audio import SAMPLE_RATE
from speakerverify.errors import AudioError, DataError, ModelError, SpeakerVerifyError
from speakerverify.scoring import l2_normalize
from speakerverify.search import positions_of

if TYPE_CHECKING:
    from speakerverify.search import Index
    from speakerverify.verifier import AudioInput, Verifier

SCHEMA_VERSION = 1
#: An outlier sits at least this far (in cosine) below the median leave-one-out cosine...
OUTLIER_MIN_GAP = 0.2
#: ...and more than this many robust standard deviations (1.4826 x MAD) below it.
OUTLIER_MADS = 3.0
#: Candidates re-scored with the model's own scoring after the inner-product search.
SHORTLIST = 50
MAX_NAME_LEN = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS speakers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    n_clips INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    duration_s REAL NOT NULL,
    added REAL NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    audio BLOB
);
CREATE INDEX IF NOT EXISTS clips_speaker ON clips(speaker_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    admin INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


def default_store_path() -> Path:
    """``$SPEAKERVERIFY_STORE``, else ``~/.local/share/speakerverify/speakers.db``."""
    env = os.environ.get("SPEAKERVERIFY_STORE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "speakerverify" / "speakers.db"


def check_name(name: str) -> str:
    """A speaker name: 1-100 printable characters, no '/', no surrounding spaces."""
    if not isinstance(name, str):
        raise SpeakerVerifyError("speaker name must be a string")
    clean = name.strip()
    if not clean:
        raise SpeakerVerifyError("speaker name is empty")
    if len(clean) > MAX_NAME_LEN:
        raise SpeakerVerifyError(f"speaker name is longer than {MAX_NAME_LEN} characters")
    if "/" in clean or not clean.isprintable():
        raise SpeakerVerifyError(f"speaker name {clean!r} contains '/' or control characters")
    return clean


def encode_flac(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> np.ndarray:
    wave, rate = sf.read(io.BytesIO(data), dtype="float32")
    if rate != SAMPLE_RATE:
        raise DataError(f"stored clip has sample rate {rate}, expected {SAMPLE_RATE}")
    return wave


def _blob(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def _vec(blob: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f4")
    if v.size != dim:
        raise DataError(f"stored embedding has {v.size} values, expected {dim}")
    return v.astype(np.float32)


def speaker_embedding(clip_embeddings: np.ndarray) -> np.ndarray:
    """A speaker's model: the normalised mean of its (normalised) clip embeddings."""
    return l2_normalize(l2_normalize(np.atleast_2d(clip_embeddings)).mean(axis=0))


def find_outliers(embeddings: np.ndarray, candidates: Sequence[int] | None = None) -> tuple[list[int], np.ndarray]:
    """Rows (among ``candidates``, default all) too unlike the rest; also each row's LOO cosine."""
    e = l2_normalize(np.atleast_2d(embeddings))
    n = len(e)
    if n < 3:
        return [], np.ones(n, dtype=np.float32)
    total = e.sum(axis=0)
    loo = np.array([float(l2_normalize(total - e[i]) @ e[i]) for i in range(n)], dtype=np.float32)
    med = float(np.median(loo))
    spread = 1.4826 * float(np.median(np.abs(loo - med)))
    cut = med - max(OUTLIER_MIN_GAP, OUTLIER_MADS * spread)
    pool = range(n) if candidates is None else candidates
    flagged = sorted((i for i in pool if loo[i] < cut), key=lambda i: loo[i])
    keep_at_least = max(2, n // 2 + 1)
    return sorted(flagged[: max(0, n - keep_at_least)]), loo


@dataclass
class Clip:
    source: str
    duration_s: float
    embedding: np.ndarray
    audio: bytes | None = None


@dataclass
class EnrollResult:
    name: str
    model: str
    enrolled: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_clips: int = 0
    replaced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "enrolled": self.enrolled,
                "rejected": self.rejected, "warnings": self.warnings, "n_clips": self.n_clips,
                "replaced": self.replaced}


@dataclass
class ReembedResult:
    model: str
    reembedded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    must_reenroll: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "reembedded": self.reembedded, "unchanged": self.unchanged,
                "must_reenroll": self.must_reenroll}


@dataclass
class _Gallery:
    generation: str
    model: str
    names: list[str]
    matrix: np.ndarray
    index: Index
    rows: dict[int, tuple[str, float, np.ndarray]]  # speaker id -> (name, updated, embedding)
    ids: np.ndarray  # speaker ids, ascending, one per row of ``matrix``

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Row positions of the top ``k`` (-1 pads). An IVF index is shared with newer galleries
        (updated in place), so it answers speaker ids and this gallery maps them to its own rows."""
        if hasattr(self.index, "search_ids"):
            return positions_of(*self.index.search_ids(query, k), self.ids)[1][0]
        return self.index.search(query, k)[1][0]


def _input_label(x: Any, i: int) -> str:
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, bytes):
        return f"<upload {i + 1}>"
    return f"<array {i + 1}>"


#: Default false-accept operating point for open-set identification (see ``SpeakerStore.identify``).
IDENTIFY_FAR = 0.01


class SpeakerStore:
    """Enroll, verify against and identify speakers kept in a SQLite file.

    ``verifier`` is the :class:`~speakerverify.verifier.Verifier` used for embedding and scoring;
    when omitted, the default model is loaded on first use. ``keep_audio`` keeps each enrollment
    clip's 16 kHz audio (FLAC) so the store can be re-embedded with another model.
    """

    def __init__(self, path: str | os.PathLike | None = None, verifier: Verifier | None = None,
                 keep_audio: bool = True, model: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._verifier = verifier
        self._model_spec = model
        self.keep_audio = keep_audio
        self._local = threading.local()
        self._gallery: _Gallery | None = None
        self._gallery_lock = threading.Lock()
        self._open()

    # -- connection and schema -------------------------------------------------------------

    def _open(self) -> None:
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory, not a speaker store")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        con = self._conn()
        try:
            version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a speaker store ({exc})") from None
        if version is not None and int(version[0]) > SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {version[0]} is newer than this speakerverify "
                            f"understands ({SCHEMA_VERSION}); upgrade speakerverify")

    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            return con
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            has_meta = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            if not has_meta:
                con.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: cannot open speaker store ({exc})") from None
        self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self) -> SpeakerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; bumps the generation so readers reload the gallery."""
        con = self._conn()
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DataError(f"{self.path}: store is busy or read-only ({exc})") from None
        try:
            yield con
            con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def model(self) -> str | None:
        """The model ident this store's embeddings belong to (None while it is empty and new)."""
        return self._meta("model")

    # -- the verifier ----------------------------------------------------------------------

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            from speakerverify.verifier import Verifier

            self._verifier = Verifier(self._model_spec)
        return self._verifier

    def check_model(self, verifier: Verifier | None = None) -> None:
        """Refuse a verifier whose embedding space is not this store's."""
        v = verifier or self.verifier
        store_model = self.model
        if store_model is not None and store_model != v.model_ident:
            raise ModelError(
                f"{self.path}: store holds embeddings of model {store_model}, but the model in use is "
                f"{v.model_ident}; scores across models are meaningless. Use the store's model, or "
                f"move the store with `speakerverify store reembed --model {v.model_name}`")

    # -- enrollment --------------------------------------------------------------------------

    def _embed_clips(self, inputs: Sequence[Any]) -> tuple[list[Clip], list[dict[str, str]]]:
        v = self.verifier
        clips: list[Clip] = []
        rejected: list[dict[str, str]] = []
        for i, item in enumerate(inputs):
            label, x = item if isinstance(item, tuple) else (_input_label(item, i), item)
            try:
                wave = v.load(x, name=label)
            except AudioError as exc:
                rejected.append({"file": label, "reason": exc.problem})
                continue
            emb = v.embed_waves([wave])[0]
            audio = encode_flac(wave) if self.keep_audio else None
            clips.append(Clip(label, len(wave) / SAMPLE_RATE, np.asarray(emb, np.float32), audio))
        return clips, rejected

    def enroll(self, name: str, inputs: Iterable[AudioInput | tuple[str, AudioInput]],
               replace: bool = False) -> EnrollResult:
        """Enroll (or add clips to) speaker ``name`` from paths, file bytes, 16 kHz arrays or
        ``(label, input)`` pairs. Clips that are unreadable, too short or too unlike the rest are
        reported in ``rejected`` and left out; raises if no clip is usable."""
        name = check_name(name)
        inputs = list(inputs)
        if not inputs:
            raise SpeakerVerifyError(f"{name}: no enrollment clips given")
        v = self.verifier
        self.check_model(v)
        clips, rejected = self._embed_clips(inputs)
        result = EnrollResult(name, v.model_ident, rejected=rejected)
        if not clips:
            reasons = "; ".join(f"{r['file']}: {r['reason']}" for r in rejected)
            raise AudioError(name, f"no usable enrollment clip ({reasons})")
        existing = self._clip_rows(name)
        stale = any(r["model"] != v.model_ident for r in existing)
        if replace or stale:
            result.replaced = bool(existing)
            if stale and not replace:
                result.warnings.append(f"{name} was enrolled with another model; old clips replaced")
            existing = []
        old = [r["embedding"] for r in existing]
        all_emb = np.stack(old + [c.embedding for c in clips])
        new_idx = list(range(len(old), len(all_emb)))
        threshold = v.backend.threshold()
        flagged, loo = find_outliers(all_emb, new_idx)
        outliers = []
        for i in flagged:  # ...and the model itself would not accept the clip as the others' speaker
            rest = speaker_embedding(np.delete(all_emb, i, axis=0))
            if float(v.score_embeddings(rest, all_emb[i])[0]) < threshold:
                outliers.append(i)
                rejected.append({"file": clips[i - len(old)].source,
                                 "reason": f"too unlike the other clips (cosine {loo[i]:.2f} to their mean, "
                                           f"median {np.median(loo):.2f}); not enrolled"})
        keep = [c for j, c in zip(new_idx, clips, strict=True) if j not in outliers]
        if len(all_emb) == 2:
            pair = float(v.score_embeddings(all_emb[0], all_emb[1])[0])
            if pair < threshold:
                result.warnings.append(f"the two clips score {pair:.2f} against each other, below the model's "
                                       f"threshold {threshold:.2f}: check they are the same speaker")
        mean = speaker_embedding(np.stack(old + [c.embedding for c in keep]))
        now = time.time()
        with self._write() as con:
            # Checked again inside the transaction: another process may have set the model.
            store_model = con.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            if store_model is not None and store_model[0] != v.model_ident:
                raise ModelError(f"{self.path}: store now holds model {store_model[0]}, not {v.model_ident}")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (v.model_ident,))
            row = con.execute("SELECT id, created FROM speakers WHERE name = ?", (name,)).fetchone()
            if row is not None and (replace or stale):
                con.execute("DELETE FROM clips WHERE speaker_id = ?", (row[0],))
            n_total = len(old) + len(keep)
            if row is None:
                cur = con.execute(
                    "INSERT INTO speakers (name, model, dim, embedding, n_clips, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, v.model_ident, mean.size, _blob(mean), n_total, now, now))
                sid = int(cur.lastrowid)  # type: ignore[arg-type]
            else:
                sid = int(row[0])
                if not (replace or stale):
                    # Another writer may have added clips since we read them: recompute from the table.
                    n_now = con.execute("SELECT COUNT(*) FROM clips WHERE speaker_id = ?", (sid,)).fetchone()[0]
                    if n_now != len(old):
                        raise DataError(f"{name}: enrolled concurrently by another writer; try again")
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, n_clips = ?, updated = ? "
                            "WHERE id = ?", (v.model_ident, mean.size, _blob(mean), n_total, now, sid))
            con.executemany(
                "INSERT INTO clips (speaker_id, source, duration_s, added, model, dim, embedding, audio) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(sid, c.source, c.duration_s, now, v.model_ident, c.embedding.size, _blob(c.embedding), c.audio)
                 for c in keep])
        result.enrolled = [c.source for c in keep]
        result.n_clips = len(old) + len(keep)
        return result

    def _clip_rows(self, name: str) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT c.source, c.model, c.dim, c.embedding FROM clips c JOIN speakers s ON s.id = c.speaker_id "
            "WHERE s.name = ? ORDER BY c.id", (name,)).fetchall()
        return [{"source": r[0], "model": r[1], "embedding": _vec(r[3], r[2])} for r in rows]

    # -- reading -----------------------------------------------------------------------------

    def speakers(self) -> list[dict[str, Any]]:
        """Enrolled speakers: name, clips, seconds of audio, model, audio kept, stale, times."""
        store_model = self.model
        rows = self._conn().execute(
            "SELECT s.name, s.model, s.n_clips, s.created, s.updated, "
            "COALESCE(SUM(c.duration_s), 0), COUNT(c.audio) "
            "FROM speakers s LEFT JOIN clips c ON c.speaker_id = s.id GROUP BY s.id ORDER BY s.name").fetchall()
        return [{"name": r[0], "model": r[1], "clips": int(r[2]), "duration_s": round(float(r[5]), 3),
                 "audio_kept": int(r[6]) == int(r[2]), "stale": r[1] != store_model,
                 "created": r[3], "updated": r[4]} for r in rows]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._conn().execute(
            "SELECT 1 FROM speakers WHERE name = ?", (name.strip(),)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM speakers").fetchone()[0])

    def remove(self, name: str) -> bool:
        """Remove a speaker and its clips; False when there was no such speaker."""
        name = check_name(name)
        with self._write() as con:
            row = con.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            con.execute("DELETE FROM clips WHERE speaker_id = ?", (row[0],))
            con.execute("DELETE FROM speakers WHERE id = ?", (row[0],))
            return True

    def speaker_vector(self, name: str) -> np.ndarray:
        name = check_name(name)
        row = self._conn().execute("SELECT model, dim, embedding FROM speakers WHERE name = ?",
                                   (name,)).fetchone()
        if row is None:
            raise SpeakerNotFound(name)
        if row[0] != self.verifier.model_ident:
            raise ModelError(f"{name}: enrolled with model {row[0]}, not {self.verifier.model_ident}, and "
                             "its audio was not kept: enroll the speaker again")
        return _vec(row[2], row[1])

    # -- scoring -----------------------------------------------------------------------------

    def _query(self, x: Any) -> tuple[np.ndarray, float]:
        """The probe's embedding and its length in seconds (for a duration-aware calibration)."""
        v = self.verifier
        label, x = x if isinstance(x, tuple) else (None, x)
        wave = v.load(x, label)
        return v.embed_waves([wave], second=v.bundle.two_branch)[0], len(wave) / SAMPLE_RATE

    def verify(self, name: str, x: Any, far: float | None = None) -> dict[str, Any]:
        """Is recording ``x`` speaker ``name``? Keys: speaker, score, same_speaker, threshold,
        model (+ llr, probability for calibrated models)."""
        v = self.verifier
        self.check_model(v)
        ref = self.speaker_vector(name)
        q, duration = self._query(x)
        score = float(v.score_embeddings(ref, q)[0])
        return {"speaker": check_name(name), **v.backend.decide(score, far, duration), "model": v.model_name}

    def _gallery_now(self) -> _Gallery:
        """The enrolled speakers of this model as a search index, brought up to date when the store
        changed (any process's write bumps the generation); only new or updated embeddings are read."""
        gen = self._meta("generation") or "0"
        model = self.verifier.model_ident
        with self._gallery_lock:
            g = self._gallery
            if g is not None and g.generation == gen and g.model == model:
                return g
            from speakerverify.search import build_index

            prev = g.rows if g is not None and g.model == model else {}
            con = self._conn()
            con.execute("BEGIN")  # one consistent snapshot for the reads below
            try:
                gen = self._meta("generation") or "0"
                listing = con.execute("SELECT id, name, updated FROM speakers WHERE model = ? ORDER BY id",
                                      (model,)).fetchall()
                need = [sid for sid, _, upd in listing if sid not in prev or prev[sid][1] != upd]
                fetched: dict[int, np.ndarray] = {}
                for start in range(0, len(need), 500):
                    chunk = need[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    for sid, dim, blob in con.execute(
                            f"SELECT id, dim, embedding FROM speakers WHERE id IN ({marks})", chunk):
                        fetched[sid] = _vec(blob, dim)
            finally:
                con.execute("COMMIT")
            rows = {sid: (name, upd, fetched[sid] if sid in fetched else prev[sid][2]) for sid, name, upd in listing}
            names = [r[0] for r in rows.values()]
            vectors = [r[2] for r in rows.values()]
            dim = vectors[0].size if vectors else 1
            matrix = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
            ids = np.array(list(rows), dtype=np.int64)
            index = self._updated_index(g if prev else None, rows, fetched, ids)
            if index is None:
                index = build_index(matrix, ids=ids)
            self._gallery = _Gallery(gen, model, names, matrix, index, rows, ids)
            return self._gallery

    @staticmethod
    def _updated_index(g: _Gallery | None, rows: dict, fetched: dict[int, np.ndarray], ids: np.ndarray) -> Any:
        """The previous gallery's IVF index changed in place when only a few speakers changed and
        the gallery is still IVF-sized; None means build afresh."""
        from speakerverify import search

        if g is None or not isinstance(g.index, search.FaissIVFIndex) or len(ids) < search.IVF_MIN:
            return None
        gone = [sid for sid in g.rows if sid not in rows]
        if len(gone) + len(fetched) > max(1, len(ids) // 10):
            return None  # many changes: a fresh index fits the new gallery's cells better
        changed = sorted(fetched)
        g.index.update(ids, np.array(gone + [sid for sid in changed if sid in g.rows], dtype=np.int64),
                       np.array(changed, dtype=np.int64),
                       np.stack([fetched[sid] for sid in changed]) if changed else np.zeros((0, 1), np.float32))
        return g.index

    def identify(self, x: Any, top: int = 5, far: float | None = None) -> dict[str, Any]:
        """Who is speaking in ``x``? Keys: speaker (best candidate passing the threshold, else
        ``"unknown"``), candidates (top ``top`` by score: speaker, score, same_speaker), threshold,
        model, gallery (number of enrolled speakers).

        Open-set identification compares a stranger with every enrolled speaker, so a threshold
        fit for one 1:1 check lets strangers in N times as often. Without ``far``, a calibrated
        model decides by Bayes' rule with even odds that the speaker is enrolled at all, spread
        evenly over the N enrolled: the best candidate is accepted when its LLR is at least
        ln N (ln 1 = 0 is the 1:1 even-odds point). Uncalibrated models use their ``IDENTIFY_FAR``
        operating point, else their EER threshold. ``far`` picks a fixed operating point instead."""
        v = self.verifier
        self.check_model(v)
        top = max(1, int(top))
        q, duration = self._query(x)
        g = self._gallery_now()
        cal = v.backend.calibration
        if far is None and cal is not None:
            threshold = float(cal.score_at(math.log(max(1, len(g.names))), duration)[0])
        else:
            if far is None and str(IDENTIFY_FAR) in v.backend.thresholds.get("far", {}):
                far = IDENTIFY_FAR
            threshold = v.backend.threshold(far, duration)
        candidates: list[dict[str, Any]] = []
        if len(g.names):
            idx = g.search(l2_normalize(q)[None, :], max(top, SHORTLIST))
            rows = [int(i) for i in idx if i >= 0]
            scores = v.score_embeddings(g.matrix[rows], np.repeat(q[None, :], len(rows), axis=0))
            ranked = sorted(zip(rows, scores, strict=True), key=lambda t: -float(t[1]))[:top]
            for i, s in ranked:
                d = v.backend.decide(float(s), far, duration, threshold=threshold)
                candidates.append({"speaker": g.names[i], **{k: d[k] for k in d if k != "threshold"}})
        best = candidates[0] if candidates and candidates[0]["same_speaker"] else None
        return {"speaker": best["speaker"] if best else "unknown", "candidates": candidates,
                "threshold": threshold, "model": v.model_name, "gallery": len(g.names)}

    # -- re-embedding and integrity ----------------------------------------------------------

    def reembed(self, progress: Any = None) -> ReembedResult:
        """Move the store to this verifier's model: re-embed every speaker from kept audio; list
        the speakers without kept audio, who must re-enroll. One transaction at the end."""
        v = self.verifier
        target = v.model_ident
        result = ReembedResult(target)
        con = self._conn()
        speakers = con.execute("SELECT id, name, model FROM speakers ORDER BY name").fetchall()
        updates: list[tuple[int, np.ndarray, list[tuple[int, np.ndarray]]]] = []
        for sid, name, model in speakers:
            clip_rows = con.execute("SELECT id, model, audio FROM clips WHERE speaker_id = ? ORDER BY id",
                                    (sid,)).fetchall()
            if model == target and all(r[1] == target for r in clip_rows):
                result.unchanged.append(name)
                continue
            if not clip_rows or any(r[2] is None for r in clip_rows):
                result.must_reenroll.append(name)
                continue
            new = []
            for cid, _, audio in clip_rows:
                wave = decode_flac(audio)
                new.append((int(cid), v.embed_waves([wave])[0].astype(np.float32)))
            updates.append((int(sid), speaker_embedding(np.stack([e for _, e in new])), new))
            result.reembedded.append(name)
            if progress:
                progress(name)
        now = time.time()
        with self._write() as con:
            for sid, mean, new in updates:
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, updated = ? WHERE id = ?",
                            (target, mean.size, _blob(mean), now, sid))
                con.executemany("UPDATE clips SET model = ?, dim = ?, embedding = ? WHERE id = ?",
                                [(target, e.size, _blob(e), cid) for cid, e in new])
            con.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (target,))
        return result

    def check_integrity(self) -> list[str]:
        """Problems found (empty when the store is sound): SQLite's own check, then every
        speaker complete (clip count, embedding sizes, models)."""
        con = self._conn()
        problems = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        for sid, name, model, dim, emb, n_clips in con.execute(
                "SELECT id, name, model, dim, embedding, n_clips FROM speakers").fetchall():
            clips = con.execute("SELECT model, dim, embedding FROM clips WHERE speaker_id = ?", (sid,)).fetchall()
            if len(clips) != n_clips or n_clips == 0:
                problems.append(f"{name}: {len(clips)} clips stored, {n_clips} recorded")
            if len(emb) != 4 * dim:
                problems.append(f"{name}: speaker embedding size {len(emb)} bytes, expected {4 * dim}")
            for cm, cd, ce in clips:
                if cm != model or len(ce) != 4 * cd or cd != dim:
                    problems.append(f"{name}: clip embedding of model {cm} / dim {cd} does not match")
                    break
        orphans = con.execute("SELECT COUNT(*) FROM clips WHERE speaker_id NOT IN (SELECT id FROM speakers)"
                              ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} clips belong to no speaker")
        return problems


class SpeakerNotFound(SpeakerVerifyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no enrolled speaker named {name!r}")
