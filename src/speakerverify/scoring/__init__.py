"""The scoring back end, in one place: from two embeddings to a calibrated decision.

* :mod:`~speakerverify.scoring.similarity` -- cosine similarity, AS-norm;
* :mod:`~speakerverify.scoring.calibration` -- scores to LLRs, optionally duration-aware;
* :mod:`~speakerverify.scoring.backend` -- ``backend.json`` at run time: operating points, 1:1
  decisions, the open-set identification threshold;
* :mod:`~speakerverify.scoring.fit` -- :func:`fit_backend`, the one place a ``backend.json`` is
  fitted (training export, ensembles, imported models, scripts).
"""

from speakerverify.scoring.backend import IDENTIFY_FAR, IDENTIFY_STRANGER_RATE, Backend, Decision
from speakerverify.scoring.calibration import Calibration
from speakerverify.scoring.similarity import ASNorm, cosine, l2_normalize

__all__ = ["IDENTIFY_FAR", "IDENTIFY_STRANGER_RATE", "ASNorm", "Backend", "Calibration", "Decision", "cosine",
           "l2_normalize"]
