"""The speaker store: enrolled speakers in a SQLite file or a PostgreSQL database (:mod:`.db`).

One store holds, per speaker, its enrollment clips (embedding, source name, duration, time added,
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

Biometric data: with a store key (:mod:`.crypto`) embeddings and audio are encrypted at rest;
``keep_audio`` (a store setting, :meth:`SpeakerStore.set_keep_audio`) decides whether raw audio is
kept at all; removals erase (:mod:`.db`); every enrollment, removal, verification and
identification is in the audit log (:mod:`.audit`). A damaged file gives one line naming it
(:class:`~speakerverify.errors.DataError`), never an SQLite traceback.

The enrollment policy (clip checks, duplicates, outliers, averaging) is in :mod:`.enrollment`, the
database in :mod:`.db`, the search gallery in :mod:`.gallery`.
"""

from __future__ import annotations

import os
import shlex
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speakerverify.audio import SAMPLE_RATE, check_limit
from speakerverify.errors import (
    AudioError,
    DataError,
    ModelError,
    SpeakerNotFound,
    SpeakerVerifyError,
    StoreBusy,
)
from speakerverify.scoring import l2_normalize
from speakerverify.store import audit as audit_log
from speakerverify.store.codecs import decode_flac, encode_flac, from_blob, to_blob
from speakerverify.store.crypto import Cipher, resolve_key, store_cipher
from speakerverify.store.db import Database, guarded
from speakerverify.store.engines import open_database
from speakerverify.store.enrollment import (
    audio_digest,
    check_name,
    duplicate_of,
    input_label,
    no_usable_clip,
    select_clips,
    skip,
    speaker_embedding,
)
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
    """Enroll, verify against and identify speakers kept in a SQLite file or, for a
    ``postgresql://`` URL, a PostgreSQL database (:func:`~.engines.open_database`).

    ``verifier`` is the :class:`~speakerverify.verifier.Verifier` used for embedding and scoring;
    when omitted, the default model is loaded on first use. ``keep_audio`` keeps each enrollment
    clip's 16 kHz audio (FLAC) so the store can be re-embedded with another model (never when the
    store's own ``keep_audio`` setting is off). ``key`` / ``key_file``: the store's encryption key
    (default: ``$SPEAKERVERIFY_STORE_KEY_FILE`` or ``$SPEAKERVERIFY_STORE_KEY``; see
    :mod:`.crypto`). ``actor``: who the audit log names for calls that do not say (default
    ``local:<OS user>``).
    """

    def __init__(self, path: str | os.PathLike | None = None, verifier: Verifier | None = None,
                 keep_audio: bool | None = None, model: str | os.PathLike | None = None,
                 max_audio_s: float | None = None, *, key: bytes | str | None = None,
                 key_file: str | os.PathLike | None = None, actor: str | None = None,
                 busy_timeout_s: float | None = None) -> None:
        """``max_audio_s``: the longest recording accepted (default: the verifier's limit, 10 minutes
        unless set)."""
        self.db = open_database(path) if busy_timeout_s is None else open_database(path, busy_timeout_s)
        self.path: Path | str = self.db.path
        self._verifier = verifier
        self._model_spec = model
        self._keep_audio = keep_audio
        self.max_audio_s = None if max_audio_s is None else check_limit(max_audio_s)
        self.actor = actor or f"local:{audit_log.os_user()}"
        self.cipher = self._open_cipher(resolve_key(key, key_file))
        self.galleries = GalleryCache(self.db, self.cipher)

    @guarded
    def _open_cipher(self, key: bytes | None) -> Cipher:
        con = self.db.connection()
        empty = con.execute("SELECT (SELECT COUNT(*) FROM speakers) + (SELECT COUNT(*) FROM clips)").fetchone()[0] == 0
        cipher = store_cipher(key, self.db.meta("key_check"), self.db.meta("store_id") or "", str(self.path), empty)
        if key is not None and self.db.meta("key_check") is None:  # a new (empty) store: encrypted from now on
            with self.db.transaction(bump=False) as c:
                self.db.put_meta(c, "key_check", cipher.check_value())
        return cipher

    def close(self) -> None:
        self.db.close()

    def follow_changes(self, model: str) -> None:
        """Keep the gallery of ``model`` fresh in the background: on PostgreSQL, rebuild it as
        soon as any process commits a change (LISTEN/NOTIFY), so the next identify does not pay
        for it. Correctness does not depend on it: every identify checks the generation first
        (one SELECT) and reloads what changed."""

        def refresh(_generation: str) -> None:
            try:
                self.galleries.now(model)
            except Exception:  # noqa: BLE001 - the next identify reloads (and reports) it anyway
                pass

        self.db.listen(refresh)

    def __enter__(self) -> SpeakerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str | None:
        """The model ident this store's embeddings belong to (None while it is empty and new)."""
        return self.db.meta("model")

    @property
    def encrypted(self) -> bool:
        return self.cipher.encrypted

    # -- settings ----------------------------------------------------------------------------

    @property
    def keep_audio(self) -> bool:
        """Whether enrollment keeps the clips' audio: the store's setting (default on), unless
        this store object was opened with ``keep_audio=False``."""
        return self.db.meta("keep_audio") != "0" and self._keep_audio is not False

    @keep_audio.setter
    def keep_audio(self, value: bool | None) -> None:
        self._keep_audio = value

    def settings(self) -> dict[str, Any]:
        """The store's settings and what it holds, for ``store settings``."""
        con = self.db.connection()
        kept = con.execute("SELECT COUNT(*) FROM clips WHERE audio IS NOT NULL").fetchone()[0]
        return {"store": str(self.path), "schema": int(self.db.meta("schema") or 0), "model": self.model,
                "keep_audio": self.db.meta("keep_audio") != "0", "encrypted": self.encrypted,
                "speakers": len(self), "clips_with_audio": int(kept)}

    @guarded
    def set_keep_audio(self, keep: bool, actor: str | None = None) -> int:
        """Turn the store's ``keep_audio`` setting on or off; off erases every kept clip's audio
        (``store reembed`` then needs the speakers to re-enroll). Returns the clips erased."""
        with self.db.transaction(erase=not keep) as con:
            self.db.put_meta(con, "keep_audio", "1" if keep else "0")
            erased = 0 if keep else con.execute("UPDATE clips SET audio = NULL WHERE audio IS NOT NULL").rowcount
            audit_log.record(con, actor or self.actor, "settings", None,
                             f"keep_audio {'on' if keep else 'off'}" + (f"; audio of {erased} clips erased"
                                                                        if erased else ""))
        return int(erased)

    # -- the verifier ----------------------------------------------------------------------

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            from speakerverify.verifier import Verifier

            self._verifier = Verifier(self._model_spec)
        return self._verifier

    def _model_arg(self, v: Verifier) -> str:
        """How ``--model`` names this verifier's model in a command: a shipped model by name, any
        other model directory by its path (quoted for the shell)."""
        from speakerverify.embedding.model_dir import PRETRAINED

        directory = getattr(v.bundle, "directory", None)
        if directory is None:
            return shlex.quote(str(self._model_spec or v.model_name))
        directory = Path(directory).resolve()
        if directory.parent == PRETRAINED.resolve():
            return directory.name
        return shlex.quote(str(directory))

    def check_model(self, verifier: Verifier | None = None) -> None:
        """Refuse a verifier whose embedding space is not this store's."""
        v = verifier or self.verifier
        store_model = self.model
        if store_model is not None and store_model != v.model_ident:
            raise ModelError(
                f"{self.path}: store holds embeddings of model {store_model}, but the model in use is "
                f"{v.model_ident}; scores across models are meaningless. Use the store's model, or "
                f"move the store with `speakerverify store reembed --store {shlex.quote(str(self.path))} "
                f"--model {self._model_arg(v)}`")

    # -- audit -------------------------------------------------------------------------------

    @guarded
    def audit(self, action: str, outcome: str, speaker: str | None = None, actor: str | None = None) -> None:
        """Record an event in the audit log, in its own small transaction (changes made by the
        store record themselves inside their own transaction)."""
        with self.db.transaction(bump=False) as con:
            audit_log.record(con, actor or self.actor, action, speaker, outcome)

    @guarded
    def audit_events(self, since: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit records, oldest first: ``when`` (UTC ISO), ``actor``, ``action``, ``speaker``,
        ``outcome``; ``since``: an ISO time or a duration such as ``24h``."""
        return audit_log.events(self.db.connection(), None if since is None else audit_log.parse_since(since),
                                limit)

    def _audit_refusal(self, action: str, speaker: str | None, exc: Exception, actor: str | None) -> None:
        try:
            self.audit(action, f"refused: {exc}", speaker, actor)
        except StoreBusy:  # the store is too busy to record it; the caller still gets the error
            pass

    # -- enrollment --------------------------------------------------------------------------

    def _embed_clips(self, inputs: Sequence[Any]) -> tuple[list[Clip], list[dict[str, str]]]:
        """The usable clips, embedded, and the skipped ones with their reasons (the policy of
        :mod:`.enrollment`: unusable clips and duplicates are skipped)."""
        v = self.verifier
        keep_audio = self.keep_audio
        clips: list[Clip] = []
        skipped: list[dict[str, str]] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(inputs):
            label, x = item if isinstance(item, tuple) else (input_label(item, i), item)
            try:
                wave = v.load(x, name=label, max_audio_s=self.max_audio_s)
            except AudioError as exc:
                skipped.append(skip(label, exc.problem))
                continue
            first = duplicate_of(audio_digest(wave), label, seen)
            if first is not None:
                skipped.append(skip(label, f"duplicate of {first} (same audio); counted once"))
                continue
            emb = v.embed_waves([wave])[0]
            audio = encode_flac(wave) if keep_audio else None
            clips.append(Clip(label, len(wave) / SAMPLE_RATE, np.asarray(emb, np.float32), audio))
        return clips, skipped

    def enroll(self, name: str, inputs: Iterable[AudioInput | tuple[str, AudioInput]],
               replace: bool = False, actor: str | None = None) -> EnrollResult:
        """Enroll (or add clips to) speaker ``name`` from paths, file bytes, 16 kHz arrays or
        ``(label, input)`` pairs. Clips that are unusable, duplicates or too unlike the rest are
        listed in ``skipped`` and left out; raises if no clip is usable. Concurrent enrollments of
        one name (threads or processes) are serialised by the store's write lock."""
        name = check_name(name)
        try:
            return self._enroll(name, list(inputs), replace, actor)
        except SpeakerVerifyError as exc:
            if not isinstance(exc, StoreBusy):
                self._audit_refusal("enroll", name, exc, actor)
            raise

    @guarded
    def _enroll(self, name: str, inputs: list[Any], replace: bool, actor: str | None) -> EnrollResult:
        if not inputs:
            raise SpeakerVerifyError(f"{name}: no enrollment clips given")
        v = self.verifier
        self.check_model(v)
        clips, rejected = self._embed_clips(inputs)
        result = EnrollResult(name, v.model_ident, rejected=rejected)
        if not clips:
            raise AudioError(name, no_usable_clip(rejected))
        now = time.time()
        # Everything below reads and writes under the write lock, so a concurrent enrollment of the
        # same name waits for this one and then adds to what it wrote.
        with self.db.transaction(erase=replace) as con:
            store_model = con.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
            if store_model is not None and store_model[0] != v.model_ident:
                raise ModelError(f"{self.path}: store now holds model {store_model[0]}, not {v.model_ident}")
            self.db.put_meta(con, "model", v.model_ident, replace=False)
            existing = self._clip_rows(con, name)
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
            row = con.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if row is not None and (replace or stale):
                con.execute("DELETE FROM clips WHERE speaker_id = ?", (row[0],))
            n_total = len(old) + len(keep)
            seal = self.cipher.seal
            if row is None:
                sid = Database.next_id(con, "speakers")
                con.execute(
                    "INSERT INTO speakers (id, name, model, dim, embedding, n_clips, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sid, name, v.model_ident, mean.size, seal(to_blob(mean), "speakers", "embedding", sid),
                     n_total, now, now))
            else:
                sid = int(row[0])
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, n_clips = ?, updated = ? "
                            "WHERE id = ?", (v.model_ident, mean.size,
                                             seal(to_blob(mean), "speakers", "embedding", sid), n_total, now, sid))
            first = Database.next_id(con, "clips")
            con.executemany(
                "INSERT INTO clips (id, speaker_id, source, duration_s, added, model, dim, embedding, audio) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(cid, sid, c.source, c.duration_s, now, v.model_ident, c.embedding.size,
                  seal(to_blob(c.embedding), "clips", "embedding", cid),
                  None if c.audio is None else seal(c.audio, "clips", "audio", cid))
                 for cid, c in enumerate(keep, start=first)])
            result.enrolled = [c.source for c in keep]
            result.n_clips = n_total
            outcome = f"ok: {len(keep)} clip(s) added, {n_total} in all" + (
                f", {len(rejected)} skipped" if rejected else "") + ("; replaced" if result.replaced else "")
            audit_log.record(con, actor or self.actor, "enroll", name, outcome)
        if result.replaced and not replace:  # a stale speaker's old clips were deleted: erase them
            self.db.erase_deleted()
        return result

    def _clip_rows(self, con: Any, name: str) -> list[dict[str, Any]]:
        rows = con.execute(
            "SELECT c.id, c.source, c.model, c.dim, c.embedding FROM clips c JOIN speakers s ON s.id = c.speaker_id "
            "WHERE s.name = ? ORDER BY c.id", (name,)).fetchall()
        return [{"source": r[1], "model": r[2],
                 "embedding": from_blob(self.cipher.open(r[4], "clips", "embedding", r[0]), r[3])} for r in rows]

    # -- reading -----------------------------------------------------------------------------

    @guarded
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

    @guarded
    def __contains__(self, name: object) -> bool:
        try:
            name = check_name(name)  # type: ignore[arg-type]
        except SpeakerVerifyError:
            return False
        return self.db.connection().execute("SELECT 1 FROM speakers WHERE name = ?", (name,)).fetchone() is not None

    @guarded
    def __len__(self) -> int:
        return int(self.db.connection().execute("SELECT COUNT(*) FROM speakers").fetchone()[0])

    @guarded
    def remove(self, name: str, actor: str | None = None) -> bool:
        """Remove a speaker and its clips, and erase them (:mod:`.db`: zeroed in the file, the WAL
        truncated); False when there was no such speaker."""
        name = check_name(name)
        with self.db.transaction(erase=True) as con:
            row = con.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()
            if row is not None:
                con.execute("DELETE FROM clips WHERE speaker_id = ?", (row[0],))
                con.execute("DELETE FROM speakers WHERE id = ?", (row[0],))
            audit_log.record(con, actor or self.actor, "remove", name, "ok" if row is not None else "not found")
        return row is not None

    @guarded
    def speaker_vector(self, name: str) -> np.ndarray:
        name = check_name(name)
        row = self.db.connection().execute("SELECT id, model, dim, embedding FROM speakers WHERE name = ?",
                                           (name,)).fetchone()
        if row is None:
            raise SpeakerNotFound(name)
        if row[1] != self.verifier.model_ident:
            raise ModelError(f"{name}: enrolled with model {row[1]}, not {self.verifier.model_ident}, and "
                             "its audio was not kept: enroll the speaker again")
        return from_blob(self.cipher.open(row[3], "speakers", "embedding", row[0]), row[2])

    # -- scoring -----------------------------------------------------------------------------

    def _query(self, x: Any) -> tuple[np.ndarray, float]:
        """The probe's embedding and its length in seconds (for a duration-aware calibration)."""
        v = self.verifier
        label, x = x if isinstance(x, tuple) else (None, x)
        wave = v.load(x, label, max_audio_s=self.max_audio_s)
        return v.embed_waves([wave], second=v.bundle.two_branch)[0], len(wave) / SAMPLE_RATE

    def verify(self, name: str, x: Any, far: float | None = None, actor: str | None = None) -> VerifyResult:
        """Is recording ``x`` speaker ``name``? Speaker, score, same_speaker, threshold, model
        (+ llr, probability for calibrated models). Recorded in the audit log."""
        from speakerverify.verifier import VerifyResult

        name = check_name(name)
        v = self.verifier
        try:
            self.check_model(v)
            ref = self.speaker_vector(name)
            q, duration = self._query(x)
            score = float(v.score_embeddings(ref, q)[0])
            result = VerifyResult.from_decision(v.backend.decide(score, far, duration), v.model_ident, name)
        except SpeakerVerifyError as exc:
            self._audit_refusal("verify", name, exc, actor)
            raise
        self.audit("verify", f"{'accept' if result.same_speaker else 'reject'} (score {result.score:.3f})", name,
                   actor)
        return result

    def identify(self, x: Any, top: int = 5, far: float | None = None, actor: str | None = None,
                 stranger_rate: float | None = None) -> IdentifyResult:
        """Who is speaking in ``x``? ``speaker``: the best candidate passing the threshold, else
        ``"unknown"``; ``candidates``: the top ``top`` by score; ``gallery``: the number of
        enrolled speakers. The threshold is the back end's open-set rule
        (:meth:`~speakerverify.scoring.Backend.identify_threshold`: for calibrated models, LLR >=
        ln(N / r), which lets in at most a share r of strangers, ``stranger_rate``, default 1 %);
        ``far`` picks a fixed per-comparison operating point instead. Recorded in the audit log."""
        try:
            result = self._identify(x, top, far, stranger_rate)
        except SpeakerVerifyError as exc:
            self._audit_refusal("identify", None, exc, actor)
            raise
        found = result.speaker != "unknown"
        self.audit("identify", f"{'match' if found else 'unknown'} (gallery {result.gallery})",
                   result.speaker if found else None, actor)
        return result

    @guarded
    def _identify(self, x: Any, top: int, far: float | None, stranger_rate: float | None) -> IdentifyResult:
        v = self.verifier
        self.check_model(v)
        top = max(1, int(top))
        q, duration = self._query(x)
        g = self.galleries.now(v.model_ident)
        threshold = v.backend.identify_threshold(len(g.names), far, duration, stranger_rate)
        candidates: list[Candidate] = []
        if len(g.names):
            idx = g.search(l2_normalize(q)[None, :], max(top, SHORTLIST))
            rows = [int(i) for i in idx if i >= 0]
            scores = v.score_embeddings(g.matrix[rows], np.repeat(q[None, :], len(rows), axis=0))
            ranked = sorted(zip(rows, scores, strict=True), key=lambda t: -float(t[1]))[:top]
            candidates = [Candidate(g.names[i], v.backend.decide(float(s), far, duration, threshold=threshold))
                          for i, s in ranked]
        best = candidates[0] if candidates and candidates[0].same_speaker else None
        return IdentifyResult(best.speaker if best else "unknown", candidates, threshold, v.model_ident, len(g.names))

    # -- re-embedding, keys and integrity ----------------------------------------------------

    @guarded
    def reembed(self, progress: Any = None, actor: str | None = None) -> ReembedResult:
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
                wave = decode_flac(self.cipher.open(audio, "clips", "audio", cid))
                new.append((int(cid), v.embed_waves([wave])[0].astype(np.float32)))
            updates.append((int(sid), speaker_embedding(np.stack([e for _, e in new])), new))
            result.reembedded.append(name)
            if progress:
                progress(name)
        now = time.time()
        seal = self.cipher.seal
        with self.db.transaction(erase=True) as con:
            for sid, mean, new in updates:
                con.execute("UPDATE speakers SET model = ?, dim = ?, embedding = ?, updated = ? WHERE id = ?",
                            (target, mean.size, seal(to_blob(mean), "speakers", "embedding", sid), now, sid))
                con.executemany("UPDATE clips SET model = ?, dim = ?, embedding = ? WHERE id = ?",
                                [(target, e.size, seal(to_blob(e), "clips", "embedding", cid), cid) for cid, e in new])
            self.db.put_meta(con, "model", target)
            audit_log.record(con, actor or self.actor, "reembed", None,
                             f"ok: model {target}, {len(result.reembedded)} re-embedded, "
                             f"{len(result.must_reenroll)} must re-enroll")
        return result

    @guarded
    def rekey(self, new_key: bytes | None, actor: str | None = None) -> int:
        """Re-encrypt every embedding and kept clip under ``new_key`` (None: store them in the
        clear) in one transaction, then erase the old ciphertext from the WAL. The store must be
        open with its current key. Returns the number of blobs rewritten."""
        new = Cipher(new_key, self.cipher.store_id, str(self.path))
        n = 0
        with self.db.transaction(erase=True) as con:
            for table, column in (("speakers", "embedding"), ("clips", "embedding"), ("clips", "audio")):
                rows = con.execute(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL").fetchall()
                for rid, blob in rows:
                    plain = self.cipher.open(blob, table, column, rid)
                    con.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?",
                                (new.seal(plain, table, column, rid), rid))
                    n += 1
            if new.encrypted:
                self.db.put_meta(con, "key_check", new.check_value())
            else:
                con.execute("DELETE FROM meta WHERE key = 'key_check'")
            was = "encrypted" if self.encrypted else "plaintext"
            now = "encrypted under the new key" if new.encrypted else "decrypted (plaintext)"
            audit_log.record(con, actor or self.actor, "rekey", None, f"ok: {was} store {now}, {n} blobs")
        self.cipher = self.galleries.cipher = new
        return n

    @guarded
    def check_integrity(self) -> list[str]:
        """Problems found (empty when the store is sound), one line each: SQLite's own check of
        every page, then every speaker complete (clip count, models) and every vector sound
        (decrypts, the right size and dimension for the store's model, finite, non-zero)."""
        problems = self.db.quick_check()
        if problems and problems[0].startswith("SQLite cannot read"):
            return problems
        con = self.db.connection()
        store_model = self.model
        try:
            speakers = con.execute("SELECT id, name, model, dim, embedding, n_clips FROM speakers").fetchall()
            clip_rows = con.execute("SELECT id, speaker_id, model, dim, embedding FROM clips").fetchall()
        except Exception as exc:  # a damaged table: reported, not raised
            return [*problems, f"cannot read the speakers and clips tables ({exc})"]
        dims = Counter(int(r[3]) for r in speakers if r[2] == store_model)
        store_dim = dims.most_common(1)[0][0] if dims else None
        by_speaker: dict[int, list[tuple]] = {}
        for r in clip_rows:
            by_speaker.setdefault(int(r[1]), []).append(r)
        for sid, name, model, dim, emb, n_clips in speakers:
            clips = by_speaker.get(int(sid), [])
            if len(clips) != n_clips or n_clips == 0:
                problems.append(f"{name}: {len(clips)} clips stored, {n_clips} recorded")
            if model == store_model and store_dim is not None and dim != store_dim:
                problems.append(f"{name}: speaker embedding has dimension {dim}, the store's model {model} "
                                f"has {store_dim}")
            problems += self._vector_problems(f"{name}: speaker embedding", emb, "speakers", int(sid), int(dim))
            for cid, _, cm, cd, ce in clips:
                if cm != model or cd != dim:
                    problems.append(f"{name}: clip {cid} embedding of model {cm} / dim {cd} does not match "
                                    f"the speaker's ({model} / {dim})")
                problems += self._vector_problems(f"{name}: clip {cid} embedding", ce, "clips", int(cid), int(cd))
        orphans = sum(1 for sid in by_speaker if sid not in {int(r[0]) for r in speakers})
        if orphans:
            problems.append(f"{orphans} clips belong to no speaker")
        return problems

    def _vector_problems(self, what: str, blob: bytes, table: str, row: int, dim: int) -> list[str]:
        try:
            v = from_blob(self.cipher.open(blob, table, "embedding", row), dim)
        except DataError as exc:
            return [f"{what}: {exc}"]
        if not np.all(np.isfinite(v)):
            return [f"{what}: holds NaN or infinite values"]
        if float(np.linalg.norm(v)) < 1e-6:
            return [f"{what}: is zero (no direction to score against)"]
        return []
