"""``beamlink demo``: the main job, end to end on this machine.

Brings up the built-in demo site (service; collections local, remote and portal; endpoints non_compute
on threads and compute on Parsl), writes a synthetic XPCS measurement with a known diffusion
coefficient into ``local:incoming/``, runs the XPCS app on it (transfer → correlate → plot → metadata →
transfer → publish), and prints each step with its duration, the fitted D against the true one, where
the results are and the portal address of the record. A second demo reuses the site, the flow, the
functions and the record (same dataset, same subject). ``--serve`` keeps the site up for browsing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from beamlink.apps.registry import load_app
from beamlink.cli.app import describe_failure, follow_app_run
from beamlink.cli.output import console
from beamlink.cli.site import SiteState, demo_site
from beamlink.cli.up import keep_up, site_home, start_site, stop_site
from beamlink.sdk import Client

__all__ = ["demo"]

DATASET = "demo-A001"
INDEX = "xpcs"


def _say(text: str) -> None:
    console.print(text, highlight=False)


def _measurement(folder: Path, frames: int, size: int) -> tuple[Path, float, bool]:
    """The demo measurement (written once; the same parameters give the same file) and its true D."""
    from beamlink.apps.xpcs.app import example_measurement
    from beamlink.apps.xpcs.measurement import read_measurement

    existed = (folder / f"{DATASET}-{size}px-{frames}f.h5").is_file()
    path = example_measurement(folder, frames=frames, size=size, name=DATASET)
    truth = read_measurement(path, load_frames=False).truth
    return path, float(truth["diffusion_nm2_s"]), existed


def _output(info: Any, *keys: str | int) -> Any:
    value = info.output
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def demo(
    home: Annotated[
        Path | None, typer.Option(help="Home of the demo site [default: $BEAMLINK_HOME/demo-site].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port for the demo service [default: 8420].")] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the site and portal up afterwards (Ctrl-C stops it).")
    ] = False,
    frames: Annotated[int, typer.Option(help="Frames in the synthetic measurement.")] = 4096,
    size: Annotated[
        int, typer.Option(help="Detector size in pixels (square): 128 makes a 270 MB measurement.")
    ] = 128,
) -> None:
    """Run the XPCS flow on a synthetic measurement through a whole local site, and show the result."""
    began = time.monotonic()
    loaded = demo_site(home)
    console.rule("[bold]beamlink demo: XPCS, instrument → facility → portal")
    _say(f"site home {loaded.home}")
    with site_home(loaded.home):
        before = SiteState.read(loaded.home)
        service = start_site(loaded, port, stop_on_failure=True)
        started_here = before is None or before.service is None or not before.service.started
        try:
            _run(loaded, service.url, frames, size)
            _say(f"[dim]demo took {time.monotonic() - began:.1f} s[/dim]")
            if serve:
                _say(f"portal: {service.url}/portal/  (Ctrl-C stops the site)")
                keep_up(loaded)
        except KeyboardInterrupt:
            pass
        finally:
            if serve or started_here:
                with console.status("stopping the demo site ..."):
                    stop_site(loaded)
            else:
                _say("the site was already up before the demo: left running (`beamlink down` stops it)")


def _run(loaded: Any, url: str, frames: int, size: int) -> None:
    incoming = loaded.collection_root("local") / "incoming"
    with console.status("writing a synthetic XPCS measurement ..."):
        path, true_d, reused = _measurement(incoming, frames, size)
    _say(
        f"[green]✓[/green] measurement local:incoming/{path.name} ({path.stat().st_size / 1e6:.1f} MB, "
        f"{frames} frames of {size}x{size}, true D = {true_d:.4g} nm²/s){' — reused' if reused else ''}"
    )
    xpcs = load_app("xpcs")
    payload = {
        "measurement": f"incoming/{path.name}",
        "remote_root": str(loaded.collection_root("remote")),
        "index": INDEX,
        "visible_to": ["public"],
    }
    with Client(url, home=loaded.home) as client:
        with console.status("checking the input, registering functions, deploying the flow ..."):
            run, deployment = xpcs.start(client, payload, label=f"demo {path.name}")
        registered = len(deployment.registered)
        functions = len(deployment.function_ids)
        reuse = "" if registered == functions else " (all reused)" if not registered else " (the rest reused)"
        _say(
            f"[green]✓[/green] flow {deployment.flow.id} {deployment.flow_action}, "
            f"{registered or 'no'} function(s) registered{reuse}; run {run.run_id}"
        )
        info, times = follow_app_run(client, xpcs, run.run_id, timeout=600)
    if info.status != "SUCCEEDED":
        _say(f"[red]✗ the run {info.status}[/red]: {describe_failure(info, times)}")
        _say(f"details: `BEAMLINK_HOME={loaded.home} beamlink run log {info.run_id}`")
        raise typer.Exit(1)
    total = (info.completion_time - info.start_time).total_seconds() if info.completion_time else 0.0
    correlation = _output(info, "Correlate", "details", "results", 0, "output") or {}
    diffusion = correlation.get("diffusion") or {}
    fitted = diffusion.get("D")
    subject = _output(info, "Paths", "subject") or ""
    portal_dir = _output(info, "Paths", "portal_dir") or ""
    remote_results = _output(info, "Paths", "work_results") or ""
    _say(f"[green]✓[/green] run {info.run_id} SUCCEEDED in {total:.2f} s")
    if isinstance(fitted, int | float):
        error = abs(fitted - true_d) / true_d
        mark = "[green]✓[/green]" if error <= 0.05 else "[yellow]![/yellow]"
        err = diffusion.get("D_err")
        plus = f" ± {err:.3g}" if isinstance(err, int | float) else ""
        _say(f"{mark} fitted D = {fitted:.4g}{plus} nm²/s, true D = {true_d:.4g} nm²/s ({error:.2%} off)")
    _say(f"results at the facility: {remote_results}")
    on_disk = loaded.collection_root("portal") / portal_dir
    _say(f"results on the portal collection: portal:{portal_dir} ({on_disk})")
    _say(f"record: {url}/portal/records/{quote(INDEX, safe='')}/{quote(subject, safe='')}")
    password = loaded.home / "server" / "admin-password"
    if password.is_file():
        _say(f"[dim]the record is public; sign in to see the runs too (admin password: {password})[/dim]")
