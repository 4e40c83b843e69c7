"""``beamlink token create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.protocol.auth import TokenInfo

app = typer.Typer(help="Your API tokens.", no_args_is_help=True)


def _status(token: TokenInfo) -> str:
    from datetime import UTC, datetime

    if token.revoked_at:
        return "revoked"
    if token.expires_at <= datetime.now(UTC):
        return "expired"
    return "active (this one)" if token.current else "active"


@app.command("list")
def list_(
    url: UrlOption = None,
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's tokens (admins).")] = False,
    json: JsonOption = False,
) -> None:
    """List your tokens (never their secrets)."""
    tokens = client(url).list_tokens(all_users=all_users)
    if json:
        print_json(tokens)
        return
    print_table(
        "Tokens",
        [
            ("ID", lambda t: t.id),
            ("Name", lambda t: t.name),
            ("User", lambda t: t.username),
            ("Created", lambda t: when(t.created_at)),
            ("Expires", lambda t: when(t.expires_at)),
            ("Last used", lambda t: when(t.last_used_at)),
            ("Status", _status),
        ],
        tokens,
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label, e.g. the script that will use it.")],
    ttl: Annotated[int | None, typer.Option("--ttl", help="Lifetime in seconds.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Create a token for a script; it is printed once."""
    issued = client(url).create_token(name, ttl_seconds=ttl)
    if json:
        print_json(issued)
        return
    console.print(f"token {issued.token_id} (expires {when(issued.expires_at)}):", highlight=False)
    print(issued.access_token)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id from `beamlink token list`.")],
    url: UrlOption = None,
) -> None:
    """Revoke a token at once."""
    info = client(url).revoke_token(token_id)
    console.print(f"revoked token {info.id} ({info.name})", highlight=False, markup=False)
