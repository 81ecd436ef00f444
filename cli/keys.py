"""``cim keys create|list|revoke``: API keys for the HTTP API (the secret is shown once)."""

from __future__ import annotations

from typing import Annotated

import typer

from cim.db.models.access import ROLES
from cim.services.access import (
    NewKey,
    Principal,
    audit,
    create_key,
    key_summary,
    list_keys,
    revoke_key,
)
from cli.context import emit, session_scope

app = typer.Typer(help="Manage API keys of the HTTP API.", no_args_is_help=True)
CLI = Principal(name="cli", role="admin")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "reader",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create a key and print its secret - the only time it is shown (only a hash is stored)."""
    with session_scope() as session:
        key, secret = create_key(session, name=name, role=role)
        created = NewKey(**key_summary(key).model_dump(), secret=secret)
        audit(session, principal=CLI, action="key-create", resource=f"api_key/{key.id}",
              client="cli", detail={"name": key.name, "role": key.role})  # fmt: skip
    emit(
        created.model_dump(mode="json"),
        as_json=as_json,
        text=f"key {created.id} ({created.role}) for {created.name}: {secret}\n"
        "store it now: it cannot be shown again",
    )


@app.command("list")
def list_(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Keys with role, creation and last use (never the secret)."""
    with session_scope() as session:
        rows = [key_summary(k) for k in list_keys(session, include_revoked=all_keys)]
    lines = [
        f"{r.id:>4}  {r.role:<7} {r.name}  created {(r.created_at or '')[:19]}"
        + (f"  last used {r.last_used_at[:19]}" if r.last_used_at else "")
        + (f"  REVOKED {r.revoked_at[:19]}" if r.revoked_at else "")
        for r in rows
    ]
    emit(
        [r.model_dump(mode="json") for r in rows],
        as_json=as_json,
        text="\n".join(lines) if lines else "no API keys",
    )


@app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(help="Id of the key (see `cim keys list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    with session_scope() as session:
        key = revoke_key(session, key_id=key_id)
        summary = key_summary(key)
        audit(session, principal=CLI, action="key-revoke", resource=f"api_key/{key.id}",
              client="cli")  # fmt: skip
    emit(
        summary.model_dump(mode="json"),
        as_json=as_json,
        text=f"revoked key {key_id} ({summary.name})",
    )
