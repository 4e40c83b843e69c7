"""``beamlink transfer SRC:PATH DST:PATH`` and ``beamlink transfer status|events|cancel|list``;
``beamlink rm COLLECTION:PATH`` (an asynchronous delete task)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from beamlink.cli.context import UrlOption
from beamlink.cli.files import split_target
from beamlink.cli.output import JsonOption, console, err_console, print_json, print_table, when
from beamlink.errors import InvalidInput
from beamlink.protocol.transfers import (
    DeleteCreate,
    TransferCreate,
    TransferInfo,
    TransferItem,
    TransferOptions,
)
from beamlink.sdk import Client

__all__ = ["app", "rm"]


class _TransferGroup(typer.core.TyperGroup):
    """``beamlink transfer SRC DST`` runs a transfer; a first word naming a subcommand runs that instead."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_TransferGroup,
    help="Copy data between collections: `beamlink transfer SRC:PATH DST:PATH`, and follow tasks.",
    no_args_is_help=True,
)


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _summary(info: TransferInfo) -> str:
    c = info.counts
    rate = f", {info.bytes_per_second / 1e6:.1f} MB/s" if info.bytes_per_second else ""
    text = (
        f"{info.kind} {info.id}: {info.state} — {c.files} file(s), {c.directories} dir(s), "
        f"{c.bytes_transferred:,} bytes{rate}; skipped {c.files_skipped}, retried {c.files_retried}, "
        f"faults {c.faults}"
    )
    if info.kind == "delete":
        text = f"delete {info.id}: {info.state} — {c.deleted} path(s) deleted; faults {c.faults}"
    if info.error is not None:
        text += f"\n  error [{info.error.code}]: {info.error.message}"
    return text


def _wait(client: Client, info: TransferInfo, *, quiet: bool) -> TransferInfo:
    if quiet or not console.is_terminal:
        final = client.wait_transfer(info.id)
    else:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]} file(s)"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            bar = progress.add_task(info.state, total=None, files=0)

            def update(now: TransferInfo) -> None:
                c = now.counts
                total = c.bytes_expected or None
                progress.update(
                    bar, completed=c.bytes_transferred, total=total, files=c.files, description=now.state
                )

            final = client.wait_transfer(info.id, on_update=update)
    _say(_summary(final))
    if final.state == "FAILED":
        raise typer.Exit(1)
    return final


@app.command("start", hidden=True)
def start(
    source: Annotated[str, typer.Argument(help="SRC_COLLECTION:PATH")],
    destination: Annotated[str, typer.Argument(help="DST_COLLECTION:PATH")],
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Copy a directory and all below it.")
    ] = False,
    sync_level: Annotated[
        str | None,
        typer.Option("--sync-level", help="exists, size, mtime or checksum: skip files already there."),
    ] = None,
    verify_checksum: Annotated[
        bool, typer.Option("--verify-checksum", help="Compare checksums after copying.")
    ] = False,
    preserve_timestamps: Annotated[bool, typer.Option("--preserve-timestamps")] = False,
    delete_extra: Annotated[
        bool, typer.Option("--delete-extra", help="Delete destination files absent at the source.")
    ] = False,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only files matching GLOB.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Not files matching GLOB.")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
    deadline: Annotated[
        datetime | None, typer.Option("--deadline", help="Fail if not done by then (ISO time, UTC).")
    ] = None,
    skip_source_errors: Annotated[
        bool, typer.Option("--skip-source-errors", help="Skip missing sources.")
    ] = False,
    submission_id: Annotated[
        str | None, typer.Option("--submission-id", help="Idempotent submission.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it finishes.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Copy SRC_COLLECTION:PATH to DST_COLLECTION:PATH (a task; `--wait` follows it)."""
    src_collection, src_path = split_target(source)
    dst_collection, dst_path = split_target(destination)
    if sync_level is not None and sync_level not in ("exists", "size", "mtime", "checksum"):
        raise InvalidInput(
            f"unknown --sync-level {sync_level!r}: use exists, size, mtime or checksum",
            details={"field": "sync_level"},
        )
    if deadline is not None and deadline.tzinfo is None:
        deadline = deadline.astimezone()
    body = TransferCreate(
        source=src_collection,
        destination=dst_collection,
        items=[TransferItem(source_path=src_path, destination_path=dst_path, recursive=recursive)],
        options=TransferOptions(
            sync_level=sync_level,
            verify_checksum=verify_checksum,
            preserve_timestamps=preserve_timestamps,
            delete_extra=delete_extra,
            include=include or [],
            exclude=exclude or [],
            skip_source_errors=skip_source_errors,
        ),
        label=label,
        deadline=deadline,
        submission_id=submission_id,
    )
    with Client(url) as client:
        info = client.submit_transfer(body)
        if wait:
            info = _wait(client, info, quiet=json)
    if json:
        print_json(info.model_dump(mode="json"))
    elif not wait:
        _say(f"submitted transfer {info.id} ({info.state})")
        _say(f"  follow it with: beamlink transfer status {info.id} --wait")


@app.command("status")
def status(
    transfer_id: str,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """A task's state and counts (`--wait` shows progress until it finishes)."""
    with Client(url) as client:
        info = client.get_transfer(transfer_id)
        if wait:
            info = _wait(client, info, quiet=json)
    if json:
        print_json(info.model_dump(mode="json"))
    elif not wait:
        _say(_summary(info))
        _say(f"  status: {info.status}")


@app.command("events")
def events(transfer_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """The task's event log: retries, faults with their codes, skipped sources, state changes."""
    with Client(url) as client:
        rows = client.transfer_events(transfer_id)
    if json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        "Events",
        [
            ("When", lambda e: when(e.at)),
            ("Code", lambda e: e.code),
            ("Error", lambda e: "yes" if e.is_error else ""),
            ("Description", lambda e: e.description),
        ],
        rows,
    )


@app.command("cancel")
def cancel(transfer_id: str, url: UrlOption = None) -> None:
    """Cancel a task (its partial files stay, so submitting it again resumes)."""
    with Client(url) as client:
        info = client.cancel_transfer(transfer_id)
    _say(_summary(info))


@app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option("--state", help="ACTIVE, INACTIVE, SUCCEEDED or FAILED.")
    ] = None,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Your transfer and delete tasks."""
    with Client(url) as client:
        rows = client.list_transfers(state=state)
    if json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        "Transfers",
        [
            ("Task ID", lambda t: t.id),
            ("Kind", lambda t: t.kind),
            ("Label", lambda t: t.label),
            ("State", lambda t: t.state),
            ("Files", lambda t: t.counts.files),
            ("Bytes", lambda t: f"{t.counts.bytes_transferred:,}"),
            ("Submitted", lambda t: when(t.created_at)),
        ],
        rows,
    )


def rm(
    targets: Annotated[list[str], typer.Argument(help="COLLECTION:PATH ... (one collection).")],
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Delete directories and all below.")
    ] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="No error for missing paths.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the task until it finishes.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Delete paths in a collection (an asynchronous delete task)."""
    parsed = [split_target(t) for t in targets]
    collections = {c for c, _ in parsed}
    if len(collections) != 1:
        raise InvalidInput("rm deletes in one collection at a time: submit one rm per collection")
    body = DeleteCreate(
        collection=parsed[0][0], paths=[p for _, p in parsed], recursive=recursive, ignore_missing=force
    )
    with Client(url) as client:
        info = client.submit_delete(body)
        if wait:
            info = _wait(client, info, quiet=True)
    if json:
        print_json(info.model_dump(mode="json"))
    elif not wait:
        _say(
            f"submitted delete {info.id} ({info.state}); follow it with `beamlink transfer status {info.id}`"
        )
