"""The speaker store: enrolled speakers in an embedded SQLite database.

One file holds, per speaker, its enrollment clips (embedding, source name, duration, time added,
and optionally the 16 kHz audio as FLAC so the store can be re-embedded with a new model), the
speaker's model embedding (the normalised mean of its clips' embeddings) and the model ident
(``name@version``) that made every embedding. API keys for the service live in the same file
(:mod:`speakerverify.store.keys`).

Safety: every change (an enrollment, a removal, a re-embedding) is one transaction (:mod:`.db`),
so a crash or ``kill -9`` at any moment loses no earlier change and never leaves a half-written
speaker. Embeddings are computed before the write transaction opens, so writers hold the lock
only for the inserts.

Models: a store belongs to one embedding space (the ``model`` meta value, set by the first
enrollment). Scoring, enrolling or identifying with a verifier of another model is refused with a
clear message; ``speakerverify store reembed --model M`` moves the store to model M, re-embedding
every speaker whose audio was kept and listing those who must re-enroll (they stay in the store,
marked stale, and are left out of identification until they do).

The enrollment policy (clip checks, outliers, averaging) is in :mod:`.enrollment`, the database
in :mod:`.db`, the search gallery in :mod:`.gallery`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speakerverify.audio import SAMPLE_RATE, check_limit
from speakerverify.errors import AudioError, DataError, ModelError, SpeakerNotFound, SpeakerVerifyError
from speakerverify.scoring import l2_normalize
from speakerverify.store.codecs import decode_flac, encode_flac, from_blob, to_blob
from speakerverify.store.db import Database
from speakerverify.store.enrollment import check_name, input_label, select_clips, speaker_embedding
from speakerverify.store.gallery import GalleryCache
from speakerverify.store.results import Candidate, EnrollResult, IdentifyResult, ReembedResult

if TYPE_CHECKING:
    from speakerverify.verifier import AudioInput, Verifier, VerifyResult

#: Candidates re-scored with the model's own scoring after the inner-product search.
SHORTLIST = 50


@dataclass
class Clip:
    source: str
    duration_s: float
    embedding: np.ndarray
    audio: bytes | None = None


class SpeakerStore:
    """Enroll, verify against and identify speakers kept in a SQLite file.

    ``verifier`` is the :class:`~speakerverify.verifier.Verifier` used for embedding and scoring;
    when omitted, the default model is loaded on first use. ``keep_audio`` keeps each enrollment
    clip's 16 kHz audio (FLAC) so the store can be re-embedded with another model.
    """

    def __init__(self, path: str | os.PathLike | None = None, verifier: Verifier | None = None,
                 keep_audio: bool = True, model: str | os.PathLike | None = None,
                 max_audio_s: float | None = None) -> None:
        """``max_audio_s``: the longest recording accepted (default: the verifier's limit, 10 minutes
        unless set)."""
        self.db = Database(path)
        self.path: Path = self.db.path
        self._verifier = verifier
        self._model_spec = model
        self.keep_audio = keep_audio
        self.max_audio_s = None if max_audio_s is None else check_limit(max_audio_s)
        self.galleries = GalleryCache(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SpeakerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str | None:
        """The model ident this store's embeddings belong to (None while it is empty and new)."""
        return self.db.meta("model")

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
            label, x = item if isinstance(item, tuple) else (input_label(item, i), item)
            try:
                wave = v.load(x, name=label, max_audio_s=self.max_audio_s)
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
        sel = select_clips(old, [c.embedding for c in clips], [c.source for c in clips], v.backend.threshold(),
                           lambda a, b: float(v.score_embeddings(a, b)[0]))
        rejected.extend(sel.rejected)
        result.warnings.extend(sel.warnings)
        keep = [clips[k] for k in sel.keep]
        mean = sel.embedding
        now = time.time()
        with self.db.transaction() as con:
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
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, v.model_ident, mean.size, to_blob(mean), n_total, now, now))
                sid = int(cur.lastrowid)  # type: ignore[arg-type]
            else:
                sid = int(row[0])
                if not (replace or stale):
                    # Another writer may have added clips since we read them: recompute from the table.
                    n_now = con.execute("SELECT COUNT(*) FROM clips WHERE speaker_id = ?", (sid,)).fetchone()[0]
                    if n_now != len(old):
                        raise DataError(f"{name}: enrolled concurrently by another writer; try again")
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, n_clips = ?, updated = ? "
                            "WHERE id = ?", (v.model_ident, mean.size, to_blob(mean), n_total, now, sid))
            con.executemany(
                "INSERT INTO clips (speaker_id, source, duration_s, added, model, dim, embedding, audio) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(sid, c.source, c.duration_s, now, v.model_ident, c.embedding.size, to_blob(c.embedding), c.audio)
                 for c in keep])
        result.enrolled = [c.source for c in keep]
        result.n_clips = len(old) + len(keep)
        return result

    def _clip_rows(self, name: str) -> list[dict[str, Any]]:
        rows = self.db.connection().execute(
            "SELECT c.source, c.model, c.dim, c.embedding FROM clips c JOIN speakers s ON s.id = c.speaker_id "
            "WHERE s.name = ? ORDER BY c.id", (name,)).fetchall()
        return [{"source": r[0], "model": r[1], "embedding": from_blob(r[3], r[2])} for r in rows]

    # -- reading -----------------------------------------------------------------------------

    def speakers(self) -> list[dict[str, Any]]:
        """Enrolled speakers: name, clips, seconds of audio, model, audio kept, stale, times."""
        store_model = self.model
        rows = self.db.connection().execute(
            "SELECT s.name, s.model, s.n_clips, s.created, s.updated, "
            "COALESCE(SUM(c.duration_s), 0), COUNT(c.audio) "
            "FROM speakers s LEFT JOIN clips c ON c.speaker_id = s.id GROUP BY s.id ORDER BY s.name").fetchall()
        return [{"name": r[0], "model": r[1], "clips": int(r[2]), "duration_s": round(float(r[5]), 3),
                 "audio_kept": int(r[6]) == int(r[2]), "stale": r[1] != store_model,
                 "created": r[3], "updated": r[4]} for r in rows]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.db.connection().execute(
            "SELECT 1 FROM speakers WHERE name = ?", (name.strip(),)).fetchone() is not None

    def __len__(self) -> int:
        return int(self.db.connection().execute("SELECT COUNT(*) FROM speakers").fetchone()[0])

    def remove(self, name: str) -> bool:
        """Remove a speaker and its clips; False when there was no such speaker."""
        name = check_name(name)
        with self.db.transaction() as con:
            row = con.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            con.execute("DELETE FROM clips WHERE speaker_id = ?", (row[0],))
            con.execute("DELETE FROM speakers WHERE id = ?", (row[0],))
            return True

    def speaker_vector(self, name: str) -> np.ndarray:
        name = check_name(name)
        row = self.db.connection().execute("SELECT model, dim, embedding FROM speakers WHERE name = ?",
                                   (name,)).fetchone()
        if row is None:
            raise SpeakerNotFound(name)
        if row[0] != self.verifier.model_ident:
            raise ModelError(f"{name}: enrolled with model {row[0]}, not {self.verifier.model_ident}, and "
                             "its audio was not kept: enroll the speaker again")
        return from_blob(row[2], row[1])

    # -- scoring -----------------------------------------------------------------------------

    def _query(self, x: Any) -> tuple[np.ndarray, float]:
        """The probe's embedding and its length in seconds (for a duration-aware calibration)."""
        v = self.verifier
        label, x = x if isinstance(x, tuple) else (None, x)
        wave = v.load(x, label, max_audio_s=self.max_audio_s)
        return v.embed_waves([wave], second=v.bundle.two_branch)[0], len(wave) / SAMPLE_RATE

    def verify(self, name: str, x: Any, far: float | None = None) -> VerifyResult:
        """Is recording ``x`` speaker ``name``? Speaker, score, same_speaker, threshold, model
        (+ llr, probability for calibrated models)."""
        from speakerverify.verifier import VerifyResult

        v = self.verifier
        self.check_model(v)
        ref = self.speaker_vector(name)
        q, duration = self._query(x)
        score = float(v.score_embeddings(ref, q)[0])
        return VerifyResult.from_decision(v.backend.decide(score, far, duration), v.model_name, check_name(name))

    def identify(self, x: Any, top: int = 5, far: float | None = None) -> IdentifyResult:
        """Who is speaking in ``x``? ``speaker``: the best candidate passing the threshold, else
        ``"unknown"``; ``candidates``: the top ``top`` by score; ``gallery``: the number of
        enrolled speakers. The threshold is the back end's open-set rule
        (:meth:`~speakerverify.scoring.Backend.identify_threshold`: LLR >= ln N for calibrated
        models); ``far`` picks a fixed operating point instead."""
        v = self.verifier
        self.check_model(v)
        top = max(1, int(top))
        q, duration = self._query(x)
        g = self.galleries.now(v.model_ident)
        threshold = v.backend.identify_threshold(len(g.names), far, duration)
        candidates: list[Candidate] = []
        if len(g.names):
            idx = g.search(l2_normalize(q)[None, :], max(top, SHORTLIST))
            rows = [int(i) for i in idx if i >= 0]
            scores = v.score_embeddings(g.matrix[rows], np.repeat(q[None, :], len(rows), axis=0))
            ranked = sorted(zip(rows, scores, strict=True), key=lambda t: -float(t[1]))[:top]
            candidates = [Candidate(g.names[i], v.backend.decide(float(s), far, duration, threshold=threshold))
                          for i, s in ranked]
        best = candidates[0] if candidates and candidates[0].same_speaker else None
        return IdentifyResult(best.speaker if best else "unknown", candidates, threshold, v.model_name, len(g.names))

    # -- re-embedding and integrity ----------------------------------------------------------

    def reembed(self, progress: Any = None) -> ReembedResult:
        """Move the store to this verifier's model: re-embed every speaker from kept audio; list
        the speakers without kept audio, who must re-enroll. One transaction at the end."""
        v = self.verifier
        target = v.model_ident
        result = ReembedResult(target)
        con = self.db.connection()
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
        with self.db.transaction() as con:
            for sid, mean, new in updates:
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, updated = ? WHERE id = ?",
                            (target, mean.size, to_blob(mean), now, sid))
                con.executemany("UPDATE clips SET model = ?, dim = ?, embedding = ? WHERE id = ?",
                                [(target, e.size, to_blob(e), cid) for cid, e in new])
            con.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (target,))
        return result

    def check_integrity(self) -> list[str]:
        """Problems found (empty when the store is sound): SQLite's own check, then every
        speaker complete (clip count, embedding sizes, models)."""
        con = self.db.connection()
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
