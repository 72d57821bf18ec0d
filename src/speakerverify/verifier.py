"""The Python API for 1:1 verification: ``Verifier().verify("a.wav", "b.wav")``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from speakerverify.audio import SAMPLE_RATE, check_waveform, load_audio
from speakerverify.embedding import ModelBundle, load_model, make_embedder
from speakerverify.scoring import Backend, cosine

AudioInput = str | os.PathLike | np.ndarray | bytes


class Verifier:
    """Loads a model once; embeds audio (paths, file bytes or 16 kHz float arrays) and scores pairs."""

    def __init__(self, model: str | Path | None = None, backend: str = "torch",
                 threads: int | None = None) -> None:
        t0 = time.perf_counter()
        self.bundle: ModelBundle = load_model(model)
        self.embedder = make_embedder(self.bundle, backend, threads)
        cohort_file = self.bundle.directory / "cohort.npy"
        cohort = np.load(cohort_file) if cohort_file.is_file() else None
        self.backend = Backend(self.bundle.backend, cohort)
        self.load_s = time.perf_counter() - t0

    @property
    def model_name(self) -> str:
        return self.bundle.name

    @property
    def model_ident(self) -> str:
        return self.bundle.ident

    def load(self, x: AudioInput, name: str | None = None) -> np.ndarray:
        """Read and validate one input as a mono 16 kHz waveform."""
        min_s = self.bundle.min_duration_s
        if isinstance(x, np.ndarray):
            return check_waveform(x, name or "<array>", min_s)
        return load_audio(x, min_duration_s=min_s, name=name)

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
                return net.score(torch.from_numpy(ea), torch.from_numpy(eb)).float().numpy()
        raw = cosine(ea, eb)
        if self.backend.asnorm is not None:
            raw = self.backend.asnorm(ea, eb, raw)
        return raw

    def verify(self, a: AudioInput, b: AudioInput, far: float | None = None,
               names: tuple[str | None, str | None] = (None, None)) -> dict:
        """Same speaker? Returns score, same_speaker, threshold, model (+ llr, probability).
        ``names`` label in-memory inputs in error messages."""
        wa, wb = self.load(a, names[0]), self.load(b, names[1])
        ea = self.embed_waves([wa])[0]
        eb = self.embed_waves([wb], second=self.bundle.two_branch)[0]
        score = float(self.score_embeddings(ea, eb)[0])
        duration = min(len(wa), len(wb)) / SAMPLE_RATE
        return {**self.backend.decide(score, far, duration), "model": self.model_name}
