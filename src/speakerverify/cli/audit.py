"""``audit``: the store's audit log (who enrolled, removed, verified, identified, changed keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from speakerverify.cli.common import JsonOpt, KeyFileOpt, StoreOpt, emit_json, out


def audit(since: Annotated[str | None, typer.Option(
              "--since", help="Only events since an ISO time (UTC unless it says) or a duration back "
                              "from now: 30m, 12h, 7d.")] = None,
          limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the latest N events.")] = None,
          store: StoreOpt = None, key_file: KeyFileOpt = None, json_: JsonOpt = False) -> None:
    """Show the store's audit log: when (UTC), who (API key name or cli:USER), what, which speaker, outcome."""
    from speakerverify.cli.store import _store

    s = _store(store, key_file=key_file)
    events = s.audit_events(since=since, limit=limit)
    if json_:
        emit_json({"store": str(s.path), "events": events})
        return
    if not events:
        out.print(f"no audit events in {s.path}" + (f" since {since}" if since else ""), highlight=False)
        return
    table = Table(title=f"{len(events)} audit event(s) in {s.path}")
    for col in ("when (UTC)", "actor", "action", "speaker", "outcome"):
        table.add_column(col)
    for e in events:
        table.add_row(e["when"][:19].replace("T", " "), e["actor"], e["action"], e["speaker"] or "", e["outcome"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(audit)
