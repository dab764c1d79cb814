"""The plugin manager: loads plugins from entry points and collects what they register.

``SUITE_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the plugins shipped in the ``suite`` distribution
itself (as pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD does); tests register plugin objects directly
with ``get_registry().register(obj, name)``.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import SuiteError

DISABLE_ENV = "SUITE_DISABLE_PLUGIN_AUTOLOAD"
OWN_DISTRIBUTION = "suite"


@dataclass
class PluginInfo:
    name: str
    distribution: str = ""
    version: str = ""
    tasks: list[str] = field(default_factory=list)
    weight_sources: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Command:
    name: str
    help: str
    configure: Callable
    run: Callable
    plugin: str


def warn(message: str) -> None:
    print(f"suite: warning: {message}", file=sys.stderr)


class Registry:
    """Everything the loaded plugins provide, by name, with the plugin each came from."""

    def __init__(self, autoload: bool | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._collected = False
        self.register(_Core(), "suite", OWN_DISTRIBUTION, _version())
        if autoload is None:
            autoload = not os.environ.get(DISABLE_ENV)
        self._load_entry_points(autoload)

    # -- loading -----------------------------------------------------------------------------
    def _load_entry_points(self, autoload: bool) -> None:
        for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else ""
            if not autoload and dist != OWN_DISTRIBUTION:
                continue
            if ep.name in self.plugins:  # the same distribution seen twice on sys.path
                continue
            info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "")
            self.plugins[ep.name] = info
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as e:  # a broken plugin must not take the others down
                info.error = f"{type(e).__name__}: {e}".splitlines()[0]
                warn(f"plugin {ep.name!r} ({dist} {info.version}) failed to load and is skipped: {info.error}")

    def register(self, plugin: Any, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object directly (used by tests and embedding applications)."""
        self.pm.register(plugin, name=name)
        self.plugins[name] = PluginInfo(name, distribution, version)
        self._collected = False

    # -- collecting --------------------------------------------------------------------------
    def _call_each(self, hook_name: str, add: Callable) -> None:
        """Call one hook on every plugin separately, so each registration knows its plugin."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            info = self.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            try:
                impl.function(register=lambda *a, _info=info: add(_info, *a))
            except SuiteError:
                raise
            except Exception as e:
                info.error = f"{type(e).__name__}: {e}".splitlines()[0]
                warn(f"plugin {impl.plugin_name!r} failed in {hook_name} and is skipped: {info.error}")

    def _collect(self) -> None:
        if self._collected:
            return
        self.tasks: dict[str, Any] = {}
        self.weight_sources: dict[str, Any] = {}
        self.presets: dict[str, dict] = {}
        self.commands: dict[str, Command] = {}
        self._owner: dict[tuple[str, str], str] = {}
        for info in self.plugins.values():
            info.tasks, info.weight_sources, info.presets, info.commands = [], [], [], []

        def claim(kind: str, name: str, info: PluginInfo) -> None:
            key = (kind, name)
            if key in self._owner and self._owner[key] != info.name:
                raise SuiteError(
                    f"{kind} {name!r} is registered by two plugins: {self._owner[key]!r} and {info.name!r}; "
                    f"uninstall one or set {DISABLE_ENV}=1"
                )
            self._owner[key] = info.name

        def add_task(info, task):
            claim("task", task.name, info)
            task.plugin = info.name
            self.tasks[task.name] = task
            info.tasks.append(task.name)

        def add_source(info, source):
            claim("weight source", source.name, info)
            self.weight_sources[source.name] = source
            info.weight_sources.append(source.name)

        def add_preset(info, name, config):
            claim("preset", name, info)
            self.presets[name] = dict(config)
            info.presets.append(name)

        def add_command(info, name, help, configure, run):
            claim("command", name, info)
            self.commands[name] = Command(name, help, configure, run, info.name)
            info.commands.append(name)

        self._call_each("suite_register_presets", add_preset)
        self._call_each("suite_register_tasks", add_task)
        self._call_each("suite_register_weight_sources", add_source)
        self._call_each("suite_register_commands", add_command)
        self._collected = True

    # -- lookups -----------------------------------------------------------------------------
    def all_tasks(self) -> dict[str, Any]:
        self._collect()
        return dict(sorted(self.tasks.items()))

    def task(self, name: str):
        tasks = self.all_tasks()
        if name not in tasks:
            raise SuiteError(f"unknown task {name!r}; known tasks: {', '.join(tasks) or 'none'} (see `suite tasks`)")
        return tasks[name]

    def all_weight_sources(self) -> dict[str, Any]:
        self._collect()
        return dict(sorted(self.weight_sources.items()))

    def all_presets(self) -> dict[str, dict]:
        self._collect()
        return dict(self.presets)

    def all_commands(self) -> dict[str, Command]:
        self._collect()
        return dict(self.commands)


def _version() -> str:
    try:
        return metadata.version(OWN_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return ""


class _Core:
    """The host's own registrations: the backbone presets shipped in configs/backbone/."""

    @hookspecs.hookimpl
    def suite_register_presets(self, register):
        from .config import shipped_presets

        for name, config in shipped_presets().items():
            register(name, config)


_registry: Registry | None = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def reset_registry(autoload: bool | None = None) -> Registry:
    """A fresh registry (tests use this to register plugin objects in isolation)."""
    global _registry
    _registry = Registry(autoload)
    return _registry
