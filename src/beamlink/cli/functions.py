"""``beamlink function register|list|show|delete``."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from beamlink.cli.context import UrlOption, client
from beamlink.cli.output import JsonOption, console, print_json, print_table, when
from beamlink.errors import InvalidInput

app = typer.Typer(help="Registered functions.", no_args_is_help=True)


def load_callable(ref: str) -> Callable[..., Any]:
    """``FILE:NAME`` → the callable NAME defined in the Python file FILE."""
    path_text, sep, name = ref.rpartition(":")
    if not sep or not path_text or not name:
        raise InvalidInput(f"expected FILE:NAME (e.g. tools.py:analyse), got {ref!r}", details={"ref": ref})
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", details={"path": str(path)})
    module_name = f"_beamlink_register_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path} is not a Python file", details={"path": str(path)})
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dill looks the module up while pickling
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidInput(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    function = getattr(module, name, None)
    if not callable(function):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise InvalidInput(
            f"{path} defines no function {name!r}; it defines: {', '.join(defined) or 'none'}",
            details={"name": name},
        )
    return function  # type: ignore[no-any-return]


@app.command("register")
def register(
    ref: Annotated[str, typer.Argument(metavar="FILE:NAME", help="A function in a Python file.")],
    description: Annotated[str | None, typer.Option(help="What it does (default: its docstring).")] = None,
    public: Annotated[bool, typer.Option("--public", help="Anyone may see and run it.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Register a function; prints its id."""
    function = load_callable(ref)
    function_id = client(url).register_function(function, description=description, public=public)
    if json:
        print_json({"id": function_id, "name": function.__name__})
        return
    console.print(f"registered {function.__name__}: {function_id}", highlight=False, markup=False)


@app.command("list")
def list_(
    owned: Annotated[bool, typer.Option("--owned", help="Only your own.")] = False,
    url: UrlOption = None,
    json: JsonOption = False,
) -> None:
    """Functions you own or may run."""
    functions = client(url).list_functions(owned=owned)
    if json:
        print_json(functions)
        return
    print_table(
        "Functions",
        [
            ("Name", lambda f: f.name),
            ("Function ID", lambda f: f.id),
            ("Owner", lambda f: f.owner),
            ("Python", lambda f: f.environment.python_version),
            ("Public", lambda f: "yes" if f.public else ""),
            ("Registered", lambda f: when(f.created_at)),
        ],
        functions,
    )


@app.command("show")
def show(function_id: str, url: UrlOption = None, json: JsonOption = False) -> None:
    """A function, with its source."""
    info = client(url).get_function(function_id, include_source=True)
    if json:
        print_json(info)
        return
    console.print(f"{info.name} ({info.id}) by {info.owner}", highlight=False, markup=False)
    console.print(
        f"  Python {info.environment.python_version}, dill {info.environment.dill_version}",
        highlight=False,
        markup=False,
    )
    if info.source:
        print(info.source)


@app.command("delete")
def delete(function_id: str, url: UrlOption = None) -> None:
    """Delete a function you own."""
    client(url).delete_function(function_id)
    console.print(f"deleted function {function_id}", highlight=False, markup=False)
