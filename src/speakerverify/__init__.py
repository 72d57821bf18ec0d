"""speakerverify: do these two recordings come from the same speaker? Who is speaking?

``from speakerverify import Verifier, SpeakerStore``. Imports are lazy, so ``import speakerverify``
stays cheap (no torch until a class is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speakerverify.store import SpeakerStore
    from speakerverify.verifier import Verifier

__all__ = ["SpeakerStore", "Verifier"]

_LAZY = {"Verifier": "speakerverify.verifier", "SpeakerStore": "speakerverify.store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakerverify' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
