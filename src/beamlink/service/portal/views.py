"""What the signed-in pages show, read from the domain modules (every query goes through their visibility
rules: a portal page never shows what the same user could not get from the API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from beamlink.flowlang import RunState, redact
from beamlink.protocol.flows import FlowInfo, RunEvent, RunInfo
from beamlink.protocol.transfers import TransferEvent, TransferInfo
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.compute.endpoints import endpoints_query
from beamlink.service.compute.models import Endpoint
from beamlink.service.flows import runs, store
from beamlink.service.flows.models import Flow, Run
from beamlink.service.portal.timeline import Step, Timeline
from beamlink.service.transfer import transfers
from beamlink.service.transfer.collections import collections_query
from beamlink.service.transfer.models import Collection, Transfer

__all__ = [
    "AgentView",
    "Listing",
    "RunPage",
    "TransferPage",
    "agent_states",
    "dashboard",
    "flow_page",
    "flows_listing",
    "run_page",
    "runs_listing",
    "transfer_page",
    "transfers_listing",
]

T = TypeVar("T")
PER_PAGE = 25
_RECENT = 8
_AGENTS_SHOWN = 50


@dataclass(frozen=True)
class AgentView:
    """An endpoint or a collection as the dashboard shows it."""

    id: str
    kind: str
    name: str
    status: str
    owner: str
    host: str | None
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "status": self.status}


@dataclass
class Listing(Generic[T]):
    items: list[T]
    page: int
    has_next: bool


def _page(
    session: Session, query: Select[Any], page: int, per_page: int = PER_PAGE
) -> tuple[list[Any], bool]:
    rows = list(session.scalars(query.offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page


def _endpoints(session: Session, principal: Principal) -> list[AgentView]:
    query = endpoints_query(principal).order_by(Endpoint.name).limit(_AGENTS_SHOWN)
    return [
        AgentView(e.id, "endpoint", e.name, e.status, e.owner.username, e.host, e.engine or "")
        for e in session.scalars(query)
    ]


def _collections(session: Session, principal: Principal) -> list[AgentView]:
    query = collections_query(principal).order_by(Collection.name).limit(_AGENTS_SHOWN)
    return [
        AgentView(
            c.id, "collection", c.name, c.status, c.owner.username, c.host, "public" if c.public_read else ""
        )
        for c in session.scalars(query)
    ]


def _recent_runs(session: Session, principal: Principal, limit: int, **where: Any) -> list[RunInfo]:
    query = runs.runs_query(principal, **where).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    return [runs.run_info(session, principal, run) for run in session.scalars(query)]


def dashboard(session: Session, principal: Principal) -> dict[str, Any]:
    recent_transfers = session.scalars(
        transfers.transfers_query(principal).order_by(Transfer.created_at.desc()).limit(_RECENT)
    )
    return {
        "endpoints": _endpoints(session, principal),
        "collections": _collections(session, principal),
        "runs": _recent_runs(session, principal, _RECENT),
        "transfers": [_transfer_view(session, t) for t in recent_transfers],
    }


def agent_states(session: Session, principal: Principal) -> dict[str, Any]:
    """What the dashboard polls: each agent's connection state and each recent run's status."""
    agents = [*_endpoints(session, principal), *_collections(session, principal)]
    return {
        "agents": [a.to_json() for a in agents],
        "runs": [
            {"id": r.run_id, "status": r.status, "display_status": r.display_status}
            for r in _recent_runs(session, principal, _RECENT)
        ],
    }


# -- flows and runs ------------------------------------------------------------------------------------


def flows_listing(session: Session, principal: Principal, page: int) -> Listing[FlowInfo]:
    query = store.flows_query(principal).order_by(Flow.created_at.desc(), Flow.id.desc())
    rows, more = _page(session, query, page)
    return Listing([store.flow_info(session, principal, f) for f in rows], page, more)


def flow_page(session: Session, principal: Principal, flow_id: str) -> dict[str, Any]:
    flow = store.get_flow(session, principal, flow_id)
    return {
        "flow": store.flow_info(session, principal, flow),
        "runs": _recent_runs(session, principal, 20, flow_id=flow.id),
    }


def runs_listing(session: Session, principal: Principal, page: int, status: str | None) -> Listing[RunInfo]:
    query = runs.runs_query(principal, status=status).order_by(Run.created_at.desc(), Run.id.desc())
    rows, more = _page(session, query, page)
    return Listing([runs.run_info(session, principal, r) for r in rows], page, more)


@dataclass
class RunPage:
    info: RunInfo
    owner: str
    input: Any
    output: Any
    events: list[RunEvent]
    steps: list[Step]
    can_cancel: bool
    last_seq: int
    more_events: bool = False


def private_keys(run: Run) -> list[str]:
    return RunState.model_validate(run.state).private_keys if run.state else []


def run_page(session: Session, principal: Principal, run_id: str, *, max_events: int = 1000) -> RunPage:
    run = runs.get_run(session, principal, run_id)
    info = runs.run_info(session, principal, run)
    log = runs.run_log(session, principal, run.id, limit=max_events)
    timeline = Timeline()
    for event in log.entries:
        timeline.feed(event)
    owner = session.get(User, run.owner_id)
    hidden = private_keys(run)
    return RunPage(
        info=info,
        owner=owner.username if owner else run.owner_id,
        input=info.input,
        output=redact(run.output, hidden),
        events=log.entries,
        steps=timeline.steps,
        can_cancel=info.status in runs.ACTIVE_STATUSES and info.user_role in ("owner", "manager"),
        last_seq=log.marker or 0,
        more_events=log.has_next_page,
    )


# -- transfers -----------------------------------------------------------------------------------------


@dataclass
class TransferView:
    info: TransferInfo
    source: str | None
    destination: str
    percent: float | None


def _transfer_view(session: Session, transfer: Transfer) -> TransferView:
    info = transfers.transfer_info(session, transfer)
    ids = [i for i in (transfer.source_id, transfer.destination_id) if i]
    names = {c.id: c.name for c in session.scalars(select(Collection).where(Collection.id.in_(ids)))}
    expected = info.counts.bytes_expected
    percent = None
    if info.state == "SUCCEEDED":
        percent = 100.0
    elif expected:
        percent = min(100.0, 100.0 * info.counts.bytes_transferred / expected)
    return TransferView(
        info=info,
        source=names.get(transfer.source_id or "", transfer.source_id),
        destination=names.get(transfer.destination_id, transfer.destination_id),
        percent=percent,
    )


def transfers_listing(
    session: Session, principal: Principal, page: int, state: str | None
) -> Listing[TransferView]:
    query = transfers.transfers_query(principal, state=state).order_by(
        Transfer.created_at.desc(), Transfer.id.desc()
    )
    rows, more = _page(session, query, page)
    return Listing([_transfer_view(session, t) for t in rows], page, more)


@dataclass
class TransferPage:
    view: TransferView
    events: list[TransferEvent]


def transfer_view(session: Session, principal: Principal, transfer_id: str) -> TransferView:
    return _transfer_view(session, transfers.get_transfer(session, principal, transfer_id))


def transfer_page(session: Session, principal: Principal, transfer_id: str) -> TransferPage:
    view = transfer_view(session, principal, transfer_id)
    return TransferPage(view, transfers.list_events(session, principal, transfer_id))
