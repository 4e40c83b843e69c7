"""An endpoint's ``config.yaml``: what it is called, which engine runs its tasks, and their limits.

::

    display_name: Beamline 7 analysis
    engine:
      type: process            # thread | process | parsl
      max_workers: 8
    allowed_functions: [3f2a...]
    environment: {OMP_NUM_THREADS: "4"}

Every mistake is reported as a :class:`~beamlink.errors.ConfigError` naming the file, the key path, the
line and the fix (the valid keys, choices or type). The parsl engine maps YAML onto Parsl objects the way
Globus Compute does: ``provider.type`` is a class of :mod:`parsl.providers`, ``provider.launcher.type``
one of :mod:`parsl.launchers`, ``address`` a string or ``{type: address_by_interface, ifname: ib0}`` from
:mod:`parsl.addresses`, and every other key of the engine is a keyword of ``HighThroughputExecutor``.
Options are checked against those signatures (names and, where annotated or defaulted, types).

Parsl keys beamlink sets itself and refuses: ``label``; ``interchange_launch_cmd`` (the interchange runs
with the endpoint's Python); ``storage_access`` (tasks are plain calls, no Parsl staging);
``manager_selector`` and ``remote_monitoring_radio`` (objects, not YAML). ``launch_cmd`` may be set; by
default workers start as ``<the endpoint's python> -m parsl.executors.high_throughput.process_worker_pool``
so they run the Python and dill the endpoint reports. ``run_dir``, ``run_id`` and the provider's
``script_dir`` are not ``__init__`` keywords and are set by the engine at start.

``environment`` and ``worker_init`` reach parsl workers through the provider's ``worker_init``: the
job script runs ``export K=V`` for each variable, then ``worker_init``, then the provider's own
``worker_init``. The thread and process engines apply ``environment`` themselves and start no shell, so
``worker_init`` is refused for them.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import sys
import typing
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from beamlink.agents.endpoint.engines.base import Engine, OnDone, OnStarted
from beamlink.agents.yaml_config import (
    Explainer,
    Section,
    describe_value,
    did_you_mean,
    join_choices,
    load_model,
    parse_model,
    type_problem,
)
from beamlink.errors import ConfigError

__all__ = [
    "ENGINE_TYPES",
    "EXPLAINER",
    "AddressConfig",
    "EndpointConfig",
    "EngineConfig",
    "LauncherConfig",
    "ParslEngineConfig",
    "ProcessEngineConfig",
    "ProviderConfig",
    "ThreadEngineConfig",
    "build_engine",
    "default_config_text",
    "load_config",
    "parse_config",
]

ENGINE_TYPES = ("thread", "process", "parsl")

_HTEX_RESERVED = {
    "label": "beamlink names the executor itself",
    "interchange_launch_cmd": "beamlink starts the interchange with the endpoint's own Python",
    "storage_access": "tasks are plain function calls; Parsl data staging is not used",
    "manager_selector": "it takes a Python object, which YAML cannot give",
    "remote_monitoring_radio": "it takes a Python object, which YAML cannot give",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- options checked against a Parsl signature ----------------------------------------------------------


def _parameters(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """(parameters, type hints, takes **kwargs) of a class's __init__ or of a function."""
    signature = inspect.signature(target)
    parameters = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable forward references: check names only
        hints = {}
    return parameters, hints, var_keyword


def _expected_type(parameter: inspect.Parameter, hints: dict[str, Any]) -> Any:
    if parameter.name in hints:
        return hints[parameter.name]
    default = parameter.default
    # Unannotated (LocalProvider): infer from the default, loosely (an int default may take a float).
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float):
        return int | float
    if isinstance(default, str):
        return str
    return None


_ADAPTERS: dict[Any, TypeAdapter[Any] | None] = {}


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    key = repr(annotation)
    if key not in _ADAPTERS:
        try:
            _ADAPTERS[key] = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:  # a type pydantic cannot check (a Parsl class): accept any value
            _ADAPTERS[key] = None
    return _ADAPTERS[key]


def _check_options(
    target: Callable[..., Any],
    options: dict[str, Any],
    *,
    owner: str,
    reserved: dict[str, str],
    siblings: list[str],
    required: bool = False,
) -> dict[str, Any]:
    """Options for ``target(**options)``, converted to the annotated types; errors name the bad key."""
    parameters, hints, var_keyword = _parameters(target)
    valid = sorted(name for name in parameters if name not in reserved and name not in siblings)
    checked: dict[str, Any] = {}
    for raw_key, value in options.items():
        key = str(raw_key)
        if key in reserved:
            raise PydanticCustomError(
                "reserved_option", "{key} is set by beamlink", {"key": key, "reason": reserved[key]}
            )
        if key not in parameters:
            if var_keyword:
                checked[key] = value
                continue
            raise PydanticCustomError(
                "unknown_option",
                "unknown option {key}",
                {"key": key, "owner": owner, "choices": valid, "siblings": siblings},
            )
        annotation = _expected_type(parameters[key], hints)
        adapter = _adapter(annotation) if annotation is not None else None
        if adapter is not None:
            try:
                value = adapter.validate_python(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise PydanticCustomError(
                    "bad_option",
                    "{key}: wrong type",
                    {"key": key, "inner": first["type"], "inner_msg": first["msg"], "value": value},
                ) from exc
        checked[key] = value
    if required:
        missing = [
            name
            for name, p in parameters.items()
            if p.default is inspect.Parameter.empty and name not in checked and name not in reserved
        ]
        if missing:
            raise PydanticCustomError(
                "missing_option", "{key} is required", {"key": missing[0], "owner": owner}
            )
    return checked


def _lookup(module_name: str, kind: str, name: Any, predicate: Callable[[Any], bool]) -> Any:
    import importlib

    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or dir(module)
    available = sorted({n for n in names if not n.startswith("_") and predicate(getattr(module, n, None))})
    if not isinstance(name, str) or name not in available:
        raise PydanticCustomError(
            "unknown_type",
            "unknown {kind}",
            {"key": "type", "kind": kind, "value": name, "choices": available, "module": module_name},
        )
    return getattr(module, name)


def _provider_class(name: Any) -> Any:
    from parsl.providers.base import ExecutionProvider

    return _lookup(
        "parsl.providers", "provider", name, lambda o: inspect.isclass(o) and issubclass(o, ExecutionProvider)
    )


def _launcher_class(name: Any) -> Any:
    from parsl.launchers.base import Launcher

    return _lookup(
        "parsl.launchers", "launcher", name, lambda o: inspect.isclass(o) and issubclass(o, Launcher)
    )


def _address_function(name: Any) -> Any:
    return _lookup(
        "parsl.addresses",
        "address function",
        name,
        lambda o: callable(o) and getattr(o, "__name__", "").startswith("address_by_"),
    )


# -- the sections -------------------------------------------------------------------------------------


class _Typed(Section):
    """``{type: <Parsl name>, ...options}``: the options are checked against that class or function."""

    model_config = ConfigDict(extra="allow")
    _kind: ClassVar[str] = "type"

    @classmethod
    def _target(cls, name: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def _check_mapping(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        if "type" not in data and cls.model_fields["type"].is_required():
            raise PydanticCustomError("missing_type", "type is required", {"key": "type", "kind": cls._kind})
        target = cls._target(data.get("type", cls.model_fields["type"].default))
        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        options = {k: v for k, v in data.items() if k not in cls.model_fields}
        checked = _check_options(
            target,
            options,
            owner=getattr(target, "__name__", str(target)),
            reserved={},
            siblings=sorted(cls.model_fields),
            required=True,
        )
        return {**fields, **checked}

    def options(self) -> dict[str, Any]:
        """The keyword arguments for the Parsl class or function."""
        return dict(self.model_extra or {})


class LauncherConfig(_Typed):
    """``launcher: {type: SrunLauncher, overrides: "--cpu-bind=cores"}``."""

    _kind: ClassVar[str] = "launcher"
    type: str

    @classmethod
    def _target(cls, name: Any) -> Any:
        return _launcher_class(name)

    def build(self) -> Any:
        return _launcher_class(self.type)(**self.options())


class AddressConfig(_Typed):
    """``address: {type: address_by_interface, ifname: ib0}``: how workers reach the interchange."""

    _kind: ClassVar[str] = "address function"
    type: str

    @classmethod
    def _target(cls, name: Any) -> Any:
        return _address_function(name)

    def resolve(self) -> str:
        return str(_address_function(self.type)(**self.options()))


class ProviderConfig(_Typed):
    """Where blocks of workers run: ``{type: SlurmProvider, partition: debug, launcher: {...}, ...}``."""

    _kind: ClassVar[str] = "provider"
    type: str = "LocalProvider"
    launcher: LauncherConfig | None = None

    @classmethod
    def _target(cls, name: Any) -> Any:
        return _provider_class(name)

    def accepts(self, option: str) -> bool:
        parameters, _, var_keyword = _parameters(_provider_class(self.type))
        return option in parameters or var_keyword

    def build(self, *, worker_init: str = "") -> Any:
        options = self.options()
        if worker_init:
            own = options.get("worker_init") or ""
            options["worker_init"] = "\n".join(part for part in (worker_init, own) if part)
        if self.launcher is not None:
            options["launcher"] = self.launcher.build()
        return _provider_class(self.type)(**options)


class ThreadEngineConfig(Section):
    type: Literal["thread"] = "thread"
    max_workers: int = Field(default=4, ge=1, description="Threads running tasks at once.")


class ProcessEngineConfig(Section):
    type: Literal["process"] = "process"
    max_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_tasks_per_child: int | None = Field(
        default=None, ge=1, description="Replace a worker after this many tasks (None: never)."
    )


class ParslEngineConfig(Section):
    """A HighThroughputExecutor; keys other than these are its ``__init__`` keywords."""

    model_config = ConfigDict(extra="allow")

    type: Literal["parsl"] = "parsl"
    provider: ProviderConfig = Field(
        default_factory=lambda: ProviderConfig.model_validate(
            {"type": "LocalProvider", "init_blocks": 1, "min_blocks": 0, "max_blocks": 1}
        )
    )
    address: (
        Annotated[
            Annotated[str, Tag("text")] | Annotated[AddressConfig, Tag("typed")],
            Discriminator(lambda value: "typed" if isinstance(value, dict | AddressConfig) else "text"),
        ]
        | None
    ) = Field(
        default=None, description="Address workers use to reach the interchange (default: all of them)."
    )
    strategy: Literal["simple", "htex_auto_scale", "none"] = "simple"
    max_idletime: float = Field(default=120.0, ge=0, description="Idle seconds before blocks are scaled in.")
    strategy_period: float = Field(default=5.0, gt=0, description="Seconds between scaling decisions.")

    @classmethod
    def _check_mapping(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        from parsl.executors import HighThroughputExecutor

        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        options = {k: v for k, v in data.items() if k not in cls.model_fields}
        checked = _check_options(
            HighThroughputExecutor,
            options,
            owner="HighThroughputExecutor",
            reserved=dict(_HTEX_RESERVED),
            siblings=sorted(cls.model_fields),
        )
        return {**fields, **checked}

    def executor_options(self) -> dict[str, Any]:
        """The HighThroughputExecutor keywords given in the file."""
        return dict(self.model_extra or {})

    def executor(self, *, environment: dict[str, str], worker_init: str | None) -> Any:
        """A HighThroughputExecutor built from this section, not started."""
        from parsl.executors import HighThroughputExecutor
        from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

        lines = [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
        if worker_init:
            lines.append(worker_init)
        options = self.executor_options()
        if "launch_cmd" not in options and DEFAULT_LAUNCH_CMD.startswith("process_worker_pool.py "):
            pool = f"{shlex.quote(sys.executable)} -m parsl.executors.high_throughput.process_worker_pool"
            options["launch_cmd"] = DEFAULT_LAUNCH_CMD.replace("process_worker_pool.py", pool, 1)
        address = self.address.resolve() if isinstance(self.address, AddressConfig) else self.address
        return HighThroughputExecutor(
            label="htex",
            provider=self.provider.build(worker_init="\n".join(lines)),
            address=address,
            interchange_launch_cmd=[sys.executable, "-m", "parsl.executors.high_throughput.interchange"],
            **options,
        )


def _engine_type(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("type", "thread"))
    return str(getattr(data, "type", "thread"))


EngineConfig = Annotated[
    Annotated[ThreadEngineConfig, Tag("thread")]
    | Annotated[ProcessEngineConfig, Tag("process")]
    | Annotated[ParslEngineConfig, Tag("parsl")],
    Discriminator(_engine_type),
]


class EndpointConfig(Section):
    """The whole of ``config.yaml``; every key is optional."""

    display_name: str | None = Field(default=None, description="Shown instead of the endpoint's name.")
    description: str | None = None
    engine: EngineConfig = Field(default_factory=ThreadEngineConfig)
    heartbeat_period: float = Field(default=30.0, gt=0, description="Seconds between heartbeats.")
    allowed_functions: list[str] | None = Field(
        default=None, description="Ids of the only functions this endpoint runs (None: any)."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Variables set for workers.")
    worker_init: str | None = Field(default=None, description="Shell lines run before parsl workers start.")
    idle_shutdown_after: float | None = Field(
        default=None, gt=0, description="Stop after this many seconds without tasks (None: never)."
    )
    output_limit: int = Field(default=65536, ge=0, description="Characters of stdout and of stderr kept.")

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_shorthand(cls, value: Any) -> Any:
        # `engine: process` means `engine: {type: process}`.
        return {"type": value} if isinstance(value, str) else value

    @field_validator("allowed_functions", mode="before")
    @classmethod
    def _function_ids(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        ids = []
        for index, item in enumerate(value):
            try:
                ids.append(str(uuid.UUID(str(item))))
            except ValueError:
                raise PydanticCustomError(
                    "not_a_function_id", "not a function id", {"key": index, "value": item}
                ) from None
        return ids

    @field_validator("environment", mode="before")
    @classmethod
    def _variables(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        variables = {}
        for name, item in value.items():
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                raise PydanticCustomError("bad_variable_name", "bad variable name", {"key": str(name)})
            if isinstance(item, bool) or item is None or not isinstance(item, str | int | float):
                raise PydanticCustomError(
                    "bad_variable_value", "bad variable value", {"key": name, "value": item}
                )
            variables[name] = str(item)
        return variables

    @model_validator(mode="after")
    def _worker_init_reaches_workers(self) -> EndpointConfig:
        engine = self.engine
        if not isinstance(engine, ParslEngineConfig):
            if self.worker_init:
                raise PydanticCustomError(
                    "worker_init_unused",
                    "worker_init is unused",
                    {"key": "worker_init", "engine": engine.type},
                )
            return self
        if (self.worker_init or self.environment) and not engine.provider.accepts("worker_init"):
            raise PydanticCustomError(
                "worker_init_unsupported",
                "the provider takes no worker_init",
                {
                    "key": "worker_init" if self.worker_init else "environment",
                    "provider": engine.provider.type,
                },
            )
        return self


# -- loading --------------------------------------------------------------------------------------------


def load_config(path: Path) -> EndpointConfig:
    """Read and validate ``path``; ConfigError names the file, key, line and fix. Empty: all defaults."""
    return load_model(path, EndpointConfig, explainer=EXPLAINER)


def parse_config(text: str, *, source: str = "config.yaml") -> EndpointConfig:
    """Validate config text (``source`` names it in errors)."""
    return parse_model(text, EndpointConfig, source=source, explainer=EXPLAINER)


class _EndpointExplainer(Explainer):
    """The wording of the endpoint's own error kinds: Parsl options, engine types, functions, variables."""

    what: ClassVar[str] = "endpoint config"
    keys_hint: ClassVar[str] = "display_name:, engine:, ..."
    example: ClassVar[str] = "beamlink endpoint configure"
    key_kinds: ClassVar[frozenset[str]] = frozenset(
        {"unknown_key", "unknown_option", "reserved_option", "missing_option"}
    )
    parent_kinds: ClassVar[frozenset[str]] = frozenset({"missing", "missing_type", "missing_option"})

    def message(self, kind: str, ctx: dict[str, Any], key: str, at: str, parent: str) -> str | None:
        if kind != "unknown_option":
            return None
        scope = f" in {parent}" if parent else ""
        hint = did_you_mean(key, ctx["choices"] + ctx["siblings"])
        return (
            f"unknown option {key!r}{at}{scope}: {ctx['owner']} has no such option{hint} Valid options: "
            f"{join_choices(ctx['siblings'])}, and {ctx['owner']}'s: {join_choices(ctx['choices'])}"
        )

    def problem(self, kind: str, ctx: dict[str, Any], value: Any, key: str) -> str | None:
        if kind == "reserved_option":
            return f"{key!r} cannot be set in the config ({ctx['reason']})"
        if kind == "missing_type":
            return f"say which {ctx['kind']} with type: <name>"
        if kind == "missing_option":
            return f"{ctx['owner']} needs {key!r}; add {key}: <value>"
        if kind == "bad_option":
            return type_problem(ctx["inner"], value) or f"{ctx['inner_msg']} (got {describe_value(value)})"
        if kind == "unknown_type":
            hint = did_you_mean(str(value), ctx["choices"]) if isinstance(value, str) else "."
            return (
                f"unknown {ctx['kind']} {describe_value(value)}{hint} Choose one of {ctx['module']}: "
                f"{join_choices(ctx['choices'])}"
            )
        if kind == "union_tag_invalid":
            tag = str(ctx.get("tag"))
            hint = did_you_mean(tag, list(ENGINE_TYPES))
            return f"unknown engine type {tag!r}{hint} Choose one of: {join_choices(list(ENGINE_TYPES))}"
        return self._value_problem(kind, value, key, ctx)

    @staticmethod
    def _value_problem(kind: str, value: Any, key: str, ctx: dict[str, Any]) -> str | None:
        if kind == "not_a_function_id":
            return (
                f"{describe_value(value)} is not a function id; use the UUID printed by "
                "`beamlink function register` (e.g. 3f2a9c4e-...)"
            )
        if kind == "bad_variable_name":
            return f"{key!r} is not a variable name (letters, digits and _, not starting with a digit)"
        if kind == "bad_variable_value":
            return f'expected text, got {describe_value(value)}: put the value in quotes, e.g. {key}: "1"'
        if kind == "worker_init_unused":
            return (
                f"only the parsl engine runs worker_init (in its provider's job script); the "
                f"{ctx['engine']} engine starts no shell. Remove it, or set variables with environment:"
            )
        if kind == "worker_init_unsupported":
            return (
                f"{ctx['provider']} takes no worker_init, which is how beamlink passes worker_init and "
                "environment to parsl workers; remove it or use another provider"
            )
        return None


EXPLAINER = _EndpointExplainer()

# -- writing and building -------------------------------------------------------------------------------

_HEADER = """\
# beamlink endpoint configuration. Every key is optional; delete what you do not need.
# display_name: Beamline 7 analysis
# description: Reduction and fitting for beamline 7
heartbeat_period: 30          # seconds between heartbeats to the service
# idle_shutdown_after: 3600   # stop after this many seconds without tasks
output_limit: 65536           # characters of each task's stdout (and of its stderr) kept
# allowed_functions:          # run only these functions (ids from `beamlink function register`)
#   - 00000000-0000-0000-0000-000000000000
# environment:                # variables for the workers (quote numbers)
#   OMP_NUM_THREADS: "4"
"""

_ENGINES = {
    "thread": """\
engine:
  type: thread                # tasks run in threads of the endpoint process
  max_workers: 4              # tasks at once
""",
    "process": """\
engine:
  type: process               # tasks run in worker processes on this host
  max_workers: {cpus:<16}# worker processes (default: the number of CPUs)
  # max_tasks_per_child: 100  # replace a worker after this many tasks
""",
    "parsl": """\
# worker_init: |              # shell lines run before the workers start
#   module load anaconda && conda activate beamline
engine:
  type: parsl                 # a Parsl HighThroughputExecutor
  max_workers_per_node: 4     # any HighThroughputExecutor option may be given here
  # cores_per_worker: 1
  # available_accelerators: 4
  # address: {{type: address_by_interface, ifname: ib0}}
  strategy: simple            # simple | htex_auto_scale | none
  max_idletime: 120           # idle seconds before blocks are released
  provider:
    type: LocalProvider       # or SlurmProvider, PBSProProvider, KubernetesProvider, ...
    init_blocks: 1
    min_blocks: 0
    max_blocks: 1
    # For a cluster, e.g.:
    # type: SlurmProvider
    # partition: debug
    # account: my-project
    # nodes_per_block: 1
    # walltime: "01:00:00"
    # launcher: {{type: SrunLauncher}}
""",
}


def default_config_text(engine: str = "thread") -> str:
    """A commented config.yaml for ``beamlink endpoint configure`` (it loads back as a valid config)."""
    if engine not in _ENGINES:
        raise ConfigError(f"unknown engine type {engine!r}: choose one of {', '.join(ENGINE_TYPES)}")
    return _HEADER + _ENGINES[engine].format(cpus=os.cpu_count() or 1)


def build_engine(config: EndpointConfig, *, run_dir: Path, on_started: OnStarted, on_done: OnDone) -> Engine:
    """The engine the config describes, not yet started. ``run_dir`` holds its files (parsl only)."""
    from beamlink.agents.endpoint.engines.process import ProcessEngine
    from beamlink.agents.endpoint.engines.thread import ThreadEngine

    engine = config.engine
    if isinstance(engine, ThreadEngineConfig):
        return ThreadEngine(
            max_workers=engine.max_workers,
            environment=config.environment,
            on_started=on_started,
            on_done=on_done,
        )
    if isinstance(engine, ProcessEngineConfig):
        return ProcessEngine(
            max_workers=engine.max_workers,
            max_tasks_per_child=engine.max_tasks_per_child,
            environment=config.environment,
            on_started=on_started,
            on_done=on_done,
        )
    from beamlink.agents.endpoint.engines.htex import ParslEngine

    try:
        executor = engine.executor(environment=config.environment, worker_init=config.worker_init)
    except Exception as exc:
        raise ConfigError(f"cannot build the parsl executor from the engine config: {exc}") from exc
    return ParslEngine(
        executor,
        run_dir=run_dir,
        strategy=engine.strategy,
        max_idletime=engine.max_idletime,
        strategy_period=engine.strategy_period,
        on_started=on_started,
        on_done=on_done,
    )
