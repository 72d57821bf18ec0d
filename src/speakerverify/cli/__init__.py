"""The ``speakerverify`` command line (typer + rich).

One module per command group, each with ``register(app)``, registered here by explicit import:

* :mod:`.verify` -- ``verify``, ``eval``, ``seed-eval``;
* :mod:`.embed` -- ``embed`` (one file, sharded under torchrun, merge);
* :mod:`.models` -- ``export``, ``import-model``;
* :mod:`.store` -- ``enroll``, ``speakers``, ``remove``, ``verify-speaker``, ``identify``, ``store``,
  ``keys``;
* :mod:`.serve` -- ``serve``;
* :mod:`.audit` -- ``audit``;
* :mod:`.train` -- ``train``.

Shared options and helpers are in :mod:`.common`. A :class:`~speakerverify.errors.SpeakerVerifyError`
anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer

from speakerverify.cli import audit, embed, models, serve, store, train, verify
from speakerverify.cli.common import err
from speakerverify.errors import SpeakerVerifyError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Speaker verification: do these two recordings come from the same speaker?")
for group in (verify, embed, train, models, store, serve, audit):
    group.register(app)


def main() -> None:
    try:
        app()
    except SpeakerVerifyError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
