"""``beamlink search index|ingest|query|show|delete``: search indexes and their records."""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.errors import InvalidInput
from beamlink.protocol.search import IngestRequest, SearchResult

__all__ = ["app"]

app = typer.Typer(
    help="Search indexes: ingest records, query them with facets, delete them.", no_args_is_help=True
)
index_app = typer.Typer(
    help="Create, list, show and delete indexes; give admin and writer roles.", no_args_is_help=True
)
role_app = typer.Typer(help="Admins and writers of an index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
index_app.add_typer(role_app, name="role")

IndexArgument = Annotated[str, typer.Argument(help="Index name or id.")]
_BATCH = 500


def say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


# -- indexes -------------------------------------------------------------------------------------------


@index_app.command("create")
def index_create(
    name: Annotated[str, typer.Argument(help="Short unique name: lower case, digits, '.', '_', '-'.")],
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Title shown in the portal.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the index holds.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Create an index (you own it)."""
    info = client(url).create_index(name, display_name=display_name, description=description)
    if json:
        print_json(info)
        return
    say(f"created index {info.name} ({info.id})")


@index_app.command("list")
def index_list(url: UrlOption = None, json: JsonOption = False) -> None:
    """Every index (anyone may search any; what a search shows depends on who asks)."""
    rows = client(url).list_indexes()
    if json:
        print_json(rows)
        return
    print_table(
        "Indexes",
        [
            ("Name", lambda i: i.name),
            ("Title", lambda i: i.display_name),
            ("Your role", lambda i: i.user_role or "searcher"),
            ("Subjects", lambda i: i.num_subjects),
            ("Entries", lambda i: i.num_entries),
            ("Owner", lambda i: i.owner_name),
            ("Index ID", lambda i: i.id),
        ],
        rows,
    )


@index_app.command("show")
def index_show(index: IndexArgument, url: UrlOption = None, json: JsonOption = False) -> None:
    """One index: owner, your role, how many records."""
    info = client(url).get_index(index)
    if json:
        print_json(info)
        return
    say(f"index {info.name} ({info.id}): {info.display_name}")
    if info.description:
        say(f"  {info.description}")
    say(f"  owner {info.owner_name}; your role {info.user_role or 'searcher'}")
    say(f"  {info.num_subjects} subjects, {info.num_entries} entries; updated {when(info.updated_at)}")


@index_app.command("delete")
def index_delete(
    index: IndexArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    url: UrlOption = None,
) -> None:
    """Delete an index and every record in it (owner and admins)."""
    sdk = client(url)
    info = sdk.get_index(index)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(
                f"deleting index {info.name!r} removes its {info.num_entries} entries: add --yes to confirm",
                details={"field": "yes"},
            )
        typer.confirm(f"Delete index {info.name!r} and its {info.num_entries} entries?", abort=True)
    sdk.delete_index(index)
    say(f"deleted index {info.name} ({info.num_entries} entries)")


@role_app.command("add")
def role_add(
    index: IndexArgument,
    principal: Annotated[str, typer.Argument(help="'user:NAME' or 'group:NAME'.")],
    role: Annotated[str, typer.Argument(help="admin or writer.")],
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Make a user or group an admin or writer of the index."""
    info = client(url).add_index_role(index, principal, role)
    if json:
        print_json(info)
        return
    say(f"{info.principal} is now {info.role} of {index} (role id {info.id})")


@role_app.command("list")
def role_list(index: IndexArgument, url: UrlOption = None, json: JsonOption = False) -> None:
    """The admins and writers of an index."""
    rows = client(url).list_index_roles(index)
    if json:
        print_json(rows)
        return
    print_table(
        "Roles",
        [("Principal", lambda r: r.principal), ("Role", lambda r: r.role), ("Role ID", lambda r: r.id)],
        rows,
    )


@role_app.command("remove")
def role_remove(index: IndexArgument, role_id: str, url: UrlOption = None) -> None:
    """Take a role back."""
    client(url).remove_index_role(index, role_id)
    say(f"removed role {role_id} from {index}")


# -- ingest --------------------------------------------------------------------------------------------


def _documents(path: str) -> Iterator[tuple[str, Any]]:
    """(where, JSON value) for a file (or '-'): one JSON document, or one per line (JSON Lines)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).expanduser().read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", details={"field": "file"}) from None
    name = "standard input" if path == "-" else path
    try:
        whole = jsonlib.loads(text)
    except jsonlib.JSONDecodeError:
        pass
    else:
        yield name, whole
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = jsonlib.loads(line)
        except jsonlib.JSONDecodeError as exc:
            raise InvalidInput(
                f"{name} line {number} is not JSON ({exc.msg}, column {exc.colno}): give one JSON document, "
                "or one record per line",
                details={"field": "file", "line": number},
            ) from None
        yield f"{name} line {number}", value


def _records(paths: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in paths:
        for where, document in _documents(path):
            try:
                request = IngestRequest.model_validate(document)
            except ValueError as exc:
                raise InvalidInput(
                    f"{where} is not an ingest document: {exc}", details={"field": "file"}
                ) from None
            found += [record.model_dump(mode="json", exclude_none=True) for record in request.records]
    return found


@app.command("ingest")
def ingest(
    index: IndexArgument,
    files: Annotated[
        list[str],
        typer.Argument(
            help="JSON files ({subject, entries}, {records}, or Globus's GMetaList), JSON Lines, or -."
        ),
    ],
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Add or replace records (you must be a writer of the index)."""
    records = _records(files)
    sdk = client(url)
    created = updated = 0
    with Progress(
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=json or len(records) <= _BATCH,
    ) as progress:
        task = progress.add_task("ingest", total=len(records))
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            result = sdk.ingest(index, {"records": batch})
            created += result.created
            updated += result.updated
            progress.advance(task, len(batch))
    if json:
        print_json({"records": len(records), "created": created, "updated": updated})
        return
    say(f"ingested {len(records)} records into {index}: {created} entries created, {updated} replaced")


# -- query ---------------------------------------------------------------------------------------------


def _split(option: str, text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field or not value:
        raise InvalidInput(f"{option} {text!r}: write FIELD=VALUE", details={"field": option})
    return field, value


def _filters(match: list[str], match_all: list[str], ranges: list[str]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    for text in match:
        field, value = _split("--filter", text)
        filters.append({"type": "match_any", "field_name": field, "values": value.split(",")})
    for text in match_all:
        field, value = _split("--filter-all", text)
        filters.append({"type": "match_all", "field_name": field, "values": value.split(",")})
    for text in ranges:
        field, value = _split("--range", text)
        low, sep, high = value.partition("..")
        if not sep:
            raise InvalidInput(
                f"--range {text!r}: write FIELD=LOW..HIGH (either may be empty), e.g. temperature=20..30",
                details={"field": "--range"},
            )
        filters.append(
            {"type": "range", "field_name": field, "values": [{"from": low or "*", "to": high or "*"}]}
        )
    return filters


_FACET_KINDS = {"terms", "sum", "avg", "year", "month", "day", "hour"}


def _facets(texts: list[str]) -> list[dict[str, Any]]:
    facets: list[dict[str, Any]] = []
    for text in texts:
        field, _, kind = text.partition(":")
        kind = kind or "terms"
        if kind not in _FACET_KINDS:
            raise InvalidInput(
                f"--facet {text!r}: the kind after ':' is one of {', '.join(sorted(_FACET_KINDS))}",
                details={"field": "--facet"},
            )
        if kind in ("terms", "sum", "avg"):
            facets.append({"type": kind, "field_name": field})
        else:
            facets.append({"type": "date_histogram", "field_name": field, "date_interval": kind})
    return facets


def _sort(texts: list[str]) -> list[dict[str, Any]]:
    result = []
    for text in texts:
        field, _, order = text.partition(":")
        if order not in ("", "asc", "desc"):
            raise InvalidInput(f"--sort {text!r}: write FIELD or FIELD:desc", details={"field": "--sort"})
        result.append({"field_name": field, "order": order or "asc"})
    return result


def _title(content: dict[str, Any]) -> Any:
    return content.get("title") or content.get("name") or "-"


def _print_result(result: SearchResult) -> None:
    rows = [(hit.subject, entry) for hit in result.gmeta for entry in hit.entries]
    print_table(
        f"Results {result.offset + 1 if rows else 0}-{result.offset + result.count} of {result.total}",
        [
            ("Subject", lambda r: r[0]),
            ("Entry", lambda r: r[1].entry_id),
            ("Title", lambda r: _title(r[1].content)),
            ("Updated", lambda r: when(r[1].updated_at)),
        ],
        rows,
    )
    for facet in result.facet_results:
        if facet.value is not None or not facet.buckets:
            say(f"{facet.name}: {facet.value if facet.value is not None else '-'}")
            continue
        print_table(facet.name, [("Value", lambda b: b.value), ("Count", lambda b: b.count)], facet.buckets)


@app.command("query")
def query(
    index: IndexArgument,
    q: Annotated[str, typer.Argument(help='Words, "phrases", AND/OR/NOT, field:value, field:>N.')] = "",
    match: Annotated[list[str], typer.Option("--filter", help="FIELD=V1,V2: any of the values.")] = [],  # noqa: B006
    match_all: Annotated[list[str], typer.Option("--filter-all", help="FIELD=V1,V2: all of them.")] = [],  # noqa: B006
    ranges: Annotated[list[str], typer.Option("--range", help="FIELD=LOW..HIGH (numbers or dates).")] = [],  # noqa: B006
    facet: Annotated[
        list[str],
        typer.Option("--facet", help="FIELD or FIELD:KIND (terms, year, month, day, hour, sum, avg)."),
    ] = [],  # noqa: B006
    sort: Annotated[list[str], typer.Option("--sort", help="FIELD or FIELD:desc.")] = [],  # noqa: B006
    limit: Annotated[int, typer.Option("--limit", min=0, max=1000)] = 10,
    offset: Annotated[int, typer.Option("--offset", min=0, max=10_000)] = 0,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Search an index; facets count over every match, not just this page."""
    result = client(url).search(
        index,
        q,
        filters=_filters(match, match_all, ranges),
        facets=_facets(facet),
        sort=_sort(sort),
        limit=limit,
        offset=offset,
    )
    if json:
        print_json(result)
        return
    _print_result(result)


@app.command("show")
def show(
    index: IndexArgument,
    subject: Annotated[str, typer.Argument(help="The record's subject.")],
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """The entries of one record that you may see."""
    info = client(url).get_subject(index, subject)
    if json:
        print_json(info)
        return
    for entry in info.entries:
        say(f"{info.subject}" + (f" [{entry.entry_id}]" if entry.entry_id else ""))
        say(f"  visible to {', '.join(entry.visible_to)}; updated {when(entry.updated_at)}")
        print(jsonlib.dumps(entry.content, indent=2, ensure_ascii=False))


@app.command("delete")
def delete(
    index: IndexArgument,
    subject: Annotated[list[str], typer.Option("--subject", help="A record to delete (repeatable).")] = [],  # noqa: B006
    q: Annotated[str | None, typer.Option("--query", help="Delete every entry matching this query.")] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Delete records by subject, or every entry matching a query (writers)."""
    if bool(subject) == (q is not None):
        raise InvalidInput(
            "give --subject S (one or more) or --query Q, not both and not neither",
            details={"field": "subject"},
        )
    sdk = client(url)
    result = sdk.delete_subjects(index, subject) if subject else sdk.delete_by_query(index, q or "")
    if json:
        print_json(result)
        return
    say(f"deleted {result.entries} entries of {result.subjects} subjects from {index}")
