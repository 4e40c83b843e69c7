"""The paper's shape of a science app, written once: instrument → facility → portal.

::

    Names, Paths          the dataset's name (its file name without the extension) and where it lives:
                          on the remote collection, on the compute host (remote_root), on the portal
    Transfer<Raw>         the input file, local_collection → remote_collection
    ...processing...      the app's own tools (read LAYOUT.work_file, write into LAYOUT.work_results)
    <record>              a Compute tool building the record content (see :func:`record_inputs`)
    TransferResults       the results folder, remote_collection → portal_collection
    Publish               the record, subject LAYOUT.subject, to the index the input names

Every app of this package is built with :func:`instrument_to_portal`; a facility's app may be too, or
may chain its own tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from beamlink.apps.tools import Compute, Expr, Expression, Input, Publish, Tool, Transfer

__all__ = ["LAYOUT", "Layout", "instrument_to_portal", "record_inputs"]


@dataclass(frozen=True)
class Layout:
    """References to the dataset's places, computed by the ``Paths`` state."""

    remote_dir: str = "$.Paths.remote_dir"
    remote_file: str = "$.Paths.remote_file"
    remote_results: str = "$.Paths.remote_results"
    work_file: str = "$.Paths.work_file"
    """The input file as the compute host sees it (under ``remote_root``)."""
    work_results: str = "$.Paths.work_results"
    """The results folder on the compute host: what the steps write is what reaches the portal."""
    work_dir: str = "$.Paths.work_dir"
    """The dataset's folder on the compute host (room for intermediate files beside results/)."""
    portal_dir: str = "$.Paths.portal_dir"
    subject: str = "$.Paths.subject"


LAYOUT = Layout()


def record_inputs(**inputs: Any) -> dict[str, Any]:
    """A record function's inputs: ``inputs`` plus where its files will be on the portal and the run id
    (parameters ``portal_collection``, ``portal_dir``, ``run_id``)."""
    return {
        **inputs,
        "portal_collection": Input("portal_collection"),
        "portal_dir": LAYOUT.portal_dir,
        "run_id": "$._context.run_id",
    }


def instrument_to_portal(
    *,
    prefix: str,
    file_input: str,
    processing: Sequence[Tool],
    record: Compute,
    facets: list[dict[str, Any]],
    raw_name: str = "TransferRaw",
    raw_comment: str = "the raw data: instrument → facility",
    results_comment: str = "results and figures: facility → portal",
    publish_comment: str = "the record the portal shows",
) -> list[Tool]:
    """The tools of an app: names, paths, the raw transfer, ``processing``, ``record``, the results
    transfer and the publication. ``prefix`` is the folder (on the remote and portal collections) and
    the index the app uses by default; ``file_input`` is the input key naming the raw file."""
    dataset = f"pathsplit(input.{file_input})[1].rsplit('.', 1)[0]"
    names = Expression(
        name="Names",
        comment="the file's name and the dataset name (the file name without its extension)",
        parameters={"file": Expr(f"pathsplit(input.{file_input})[1]"), "dataset": Expr(dataset)},
    )
    remote = "input.remote_prefix + '/' + Names.dataset"
    paths = Expression(
        name="Paths",
        comment="where the dataset lives on the remote and portal collections, and on the compute host",
        parameters={
            "remote_dir": Expr(remote),
            "remote_file": Expr(f"{remote} + '/' + Names.file"),
            "remote_results": Expr(f"{remote} + '/results'"),
            "work_dir": Expr(f"input.remote_root + '/' + {remote}"),
            "work_file": Expr(f"input.remote_root + '/' + {remote} + '/' + Names.file"),
            "work_results": Expr(f"input.remote_root + '/' + {remote} + '/results'"),
            "portal_dir": Expr("input.portal_prefix + '/' + Names.dataset"),
            "subject": Expr("input.portal_collection + ':' + input.portal_prefix + '/' + Names.dataset"),
        },
        defaults_={"remote_prefix": prefix, "portal_prefix": prefix, "portal_collection": "portal"},
    )
    transfer_raw = Transfer(
        name=raw_name,
        comment=raw_comment,
        source=Input("local_collection"),
        destination=Input("remote_collection"),
        source_path=Input(file_input),
        destination_path=LAYOUT.remote_file,
        sync_level="checksum",
        wait_time=3600,
        defaults_={"local_collection": "local", "remote_collection": "remote"},
    )
    transfer_results = Transfer(
        name="TransferResults",
        comment=results_comment,
        source=Input("remote_collection"),
        destination=Input("portal_collection"),
        source_path=LAYOUT.remote_results,
        destination_path=LAYOUT.portal_dir,
        recursive=True,
        wait_time=3600,
    )
    publish = Publish(
        name="Publish",
        comment=publish_comment,
        index=Input("index"),
        subject=LAYOUT.subject,
        content=record.output,
        facets=facets,
        defaults_={"index": prefix},
    )
    return [names, paths, transfer_raw, *processing, record, transfer_results, publish]
