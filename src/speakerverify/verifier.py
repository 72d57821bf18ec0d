"""The Python API for 1:1 verification: ``Verifier().verify("a.wav", "b.wav")``.

The verifier ties the stages together: audio (read, validate) -> embedding (front end + network,
on the torch or onnx engine) -> scoring (similarity, AS-norm, calibration) -> a decision at an
operating point of the model's back end, returned as a :class:`VerifyResult`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speakerverify.audio import DEFAULT_MAX_AUDIO_S, SAMPLE_RATE, check_length, check_limit, check_waveform, load_audio
from speakerverify.audio.read import source_label
from speakerverify.audio.vad import VadConfig, keep_speech
from speakerverify.embedding import ModelBundle, load_model, make_embedder
from speakerverify.scoring import Backend, Decision, cosine

AudioInput = str | os.PathLike | np.ndarray | bytes


@dataclass(frozen=True)
class VerifyResult:
    """A 1:1 decision: ``score`` against ``threshold``; ``llr`` and ``probability`` for calibrated
    models; ``speaker`` when checked against an enrolled speaker. :meth:`to_dict` gives the JSON of
    ``speakerverify verify --json`` (and ``verify-speaker``)."""

    score: float
    same_speaker: bool
    threshold: float
    model: str
    llr: float | None = None
    probability: float | None = None
    speaker: str | None = None

    @classmethod
    def from_decision(cls, d: Decision, model: str, speaker: str | None = None) -> VerifyResult:
        return cls(d.score, d.same_speaker, d.threshold, model, d.llr, d.probability, speaker)

    @property
    def decision(self) -> Decision:
        return Decision(self.score, self.same_speaker, self.threshold, self.llr, self.probability)

    def to_dict(self) -> dict[str, Any]:
        head = {"speaker": self.speaker} if self.speaker is not None else {}
        return {**head, **self.decision.to_dict(), "model": self.model}


class Verifier:
    """Loads a model once; embeds audio (paths, file bytes or 16 kHz float arrays) and scores pairs.

    Recordings longer than ``max_audio_s`` seconds (default 10 minutes) are refused with an
    :class:`~speakerverify.errors.AudioError`, from the file header where it gives the length, before
    anything is decoded (see :mod:`speakerverify.audio.limits`).
    """

    #: Longest recording accepted (seconds); set per instance by ``max_audio_s``.
    max_audio_s: float = DEFAULT_MAX_AUDIO_S
    #: The speech-activity policy (``None``: every sample is embedded); set per instance by ``vad``.
    vad: VadConfig | None = None

    def __init__(self, model: str | Path | None = None, engine: str = "torch",
                 threads: int | None = None, *, backend: str | None = None,
                 max_audio_s: float = DEFAULT_MAX_AUDIO_S, device: str = "cpu", local_rank: int = 0,
                 vad: VadConfig | bool | None = None) -> None:
        """``engine``: the inference engine, ``torch`` or ``onnx`` (``backend=`` is its old,
        deprecated name; ``self.backend`` is the scoring back end). ``device``: cpu (the
        reference), cuda (GPU ``local_rank``, float16 autocast) or auto (see
        :mod:`speakerverify.embedding.device`). ``vad``: the speech-activity policy, ``None`` for
        the model's own (its model.yaml), ``False`` for none, or a
        :class:`~speakerverify.audio.vad.VadConfig`."""
        self.max_audio_s = check_limit(max_audio_s)
        if backend is not None:
            warnings.warn("Verifier(backend=...) is deprecated: the inference engine is now engine=...",
                          DeprecationWarning, stacklevel=2)
            engine = backend
        t0 = time.perf_counter()
        self.bundle: ModelBundle = load_model(model)
        self.embedder = make_embedder(self.bundle, engine, threads, device, local_rank)
        self.backend = Backend(self.bundle.backend, self.bundle.cohort)
        self.vad = self.bundle.vad if vad is None else (VadConfig() if vad is True else vad or None)
        self.load_s = time.perf_counter() - t0

    @property
    def model_name(self) -> str:
        return self.bundle.name

    @property
    def device(self) -> torch.device:
        return self.embedder.device

    @property
    def model_ident(self) -> str:
        return self.bundle.ident

    def load(self, x: AudioInput, name: str | None = None, max_audio_s: float | None = None) -> np.ndarray:
        """Read and validate one input as a mono 16 kHz waveform (a path, ``"-"`` for stdin, file
        bytes or a 16 kHz array), at most ``max_audio_s`` seconds (default: this verifier's limit),
        reduced to its speech when the model uses speech-activity detection."""
        min_s = self.bundle.min_duration_s
        limit = self.max_audio_s if max_audio_s is None else check_limit(max_audio_s)
        if isinstance(x, np.ndarray):
            label = name or "<array>"
            wave = check_waveform(x, label, min_s)
            check_length(wave.size, SAMPLE_RATE, label, limit)
        else:
            wave = load_audio(x, min_duration_s=min_s, name=name, max_audio_s=limit)
            label = name or source_label(x)
        return self.speech(wave, label)

    def speech(self, wave: np.ndarray, name: str = "<array>", strict: bool = True) -> np.ndarray:
        """``wave`` reduced to its speech under this verifier's VAD policy (unchanged without one).
        No speech found is an :class:`AudioError` naming ``name``, unless ``strict=False`` (fixed
        evaluation protocols, which score every item as given)."""
        return wave if self.vad is None else keep_speech(wave, self.vad, name, strict)

    def embed(self, x: AudioInput, name: str | None = None, second: bool = False) -> np.ndarray:
        return self.embed_waves([self.load(x, name)], second=second)[0]

    def embed_waves(self, waves: Sequence[np.ndarray], second: bool = False, batch_size: int = 1
                    ) -> np.ndarray:
        """Embed validated waveforms; batches are sorted by length to limit padding work."""
        order = np.argsort([len(w) for w in waves])
        out: list[np.ndarray | None] = [None] * len(waves)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            embs = self.embedder.embed_batch([waves[i] for i in idx], second=second)
            for i, e in zip(idx, embs, strict=True):
                out[i] = e
        return np.stack(out)  # type: ignore[arg-type]

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """Raw (normalised, where the model says so) scores of row-aligned embedding pairs."""
        ea, eb = np.atleast_2d(ea), np.atleast_2d(eb)
        net = self.bundle.network
        if hasattr(net, "score"):
            with torch.inference_mode():
                dev = self.embedder.device
                return net.score(torch.from_numpy(ea).to(dev), torch.from_numpy(eb).to(dev)).float().cpu().numpy()
        raw = cosine(ea, eb)
        if self.backend.asnorm is not None:
            raw = self.backend.asnorm(ea, eb, raw)
        return raw

    @property
    def engine(self) -> str:
        return self.embedder.engine

    def verify(self, a: AudioInput, b: AudioInput, far: float | None = None,
               names: tuple[str | None, str | None] = (None, None)) -> VerifyResult:
        """Same speaker? Score, same_speaker, threshold, model (+ llr, probability).
        ``names`` label in-memory inputs in error messages."""
        wa, wb = self.load(a, names[0]), self.load(b, names[1])
        ea = self.embed_waves([wa])[0]
        eb = self.embed_waves([wb], second=self.bundle.two_branch)[0]
        score = float(self.score_embeddings(ea, eb)[0])
        duration = min(len(wa), len(wb)) / SAMPLE_RATE
        return VerifyResult.from_decision(self.backend.decide(score, far, duration), self.model_ident)
