"""The plugin manager: loads plugins from entry points and collects what they register.

Loading never lets one plugin break the others:

- a plugin that fails to import, or whose hook raises, is one warning line (plugin, hook, error)
  and is skipped; what a failed hook registered before raising is dropped with it;
- a name registered by two plugins (a task, weight source, preset or command) is unusable, and
  only that name: using it is an error naming both plugins and their distributions;
- ``SUITE_DISABLE_PLUGINS=a,b`` and ``suite --disable-plugin NAME`` switch plugins off by the
  name ``suite plugins`` lists (the entry-point name), built-in or external, as pytest's
  ``-p no:NAME`` does; a disabled plugin is not even imported;
- ``SUITE_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the plugins shipped in the ``suite``
  distribution itself (as pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD does).

Tests register plugin objects directly with ``get_registry().register(obj, name)``.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import SuiteError, warn

DISABLE_ENV = "SUITE_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_PLUGINS_ENV = "SUITE_DISABLE_PLUGINS"
OWN_DISTRIBUTION = "suite"
HOST = "suite"  # the host's own registrations (the shipped presets); not a plugin one can disable


@dataclass
class PluginInfo:
    name: str
    distribution: str = ""
    version: str = ""
    tasks: list[str] = field(default_factory=list)
    weight_sources: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str = ""  # why it failed to import
    hook_errors: dict[str, str] = field(default_factory=dict)  # hook name -> the error it raised
    disabled: str = ""  # why it is switched off: SUITE_DISABLE_PLUGINS or --disable-plugin

    @property
    def label(self) -> str:
        """``'name' (distribution version)``, for messages."""
        dist = f"{self.distribution} {self.version}".strip()
        return f"{self.name!r}" + (f" ({dist})" if dist else "")


@dataclass
class Command:
    name: str
    help: str
    configure: Callable
    run: Callable
    plugin: str


def describe_error(e: BaseException) -> str:
    """``Type: first line of the message (at file:line)``, the line being where it was raised."""
    text = f"{type(e).__name__}: {e}".splitlines()[0]
    frames = traceback.extract_tb(e.__traceback__)
    return f"{text} (at {frames[-1].filename}:{frames[-1].lineno})" if frames else text


def names_from_env() -> list[str]:
    return [n.strip() for n in os.environ.get(DISABLE_PLUGINS_ENV, "").split(",") if n.strip()]


class Registry:
    """Everything the loaded plugins provide, by name, with the plugin each came from."""

    def __init__(self, autoload: bool | None = None, disabled: Iterable[str] = ()):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.known: set[str] = {HOST}  # every plugin name seen, loaded or not
        self.disabled: dict[str, str] = {}  # plugin name -> why it is switched off
        self._collected = False
        self.register(_Core(), HOST, OWN_DISTRIBUTION, _version())
        self.disable(names_from_env(), DISABLE_PLUGINS_ENV)
        self.disable(disabled, "--disable-plugin")
        if autoload is None:
            autoload = not os.environ.get(DISABLE_ENV)
        self._load_entry_points(autoload)
        unknown = [n for n in names_from_env() if n not in self.known]
        if unknown:
            warn(f"{DISABLE_PLUGINS_ENV} names {', '.join(map(repr, unknown))}, which is not a plugin (see `suite plugins`)")

    # -- loading -----------------------------------------------------------------------------
    def _load_entry_points(self, autoload: bool) -> None:
        for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else ""
            self.known.add(ep.name)
            if not autoload and dist != OWN_DISTRIBUTION:
                continue
            if ep.name in self.plugins:
                if self.plugins[ep.name].distribution != dist:  # not just one distribution seen twice on sys.path
                    warn(f"plugin name {ep.name!r} is used by two distributions, {self.plugins[ep.name].distribution} "
                         f"and {dist}; the second is skipped")
                continue
            info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "")
            self.plugins[ep.name] = info
            if self.pm.is_blocked(ep.name):
                info.disabled = self.disabled[ep.name]
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as e:  # a broken plugin must not take the others down
                info.error = describe_error(e)
                warn(f"plugin {info.label} failed to load and is skipped: {info.error}")

    def register(self, plugin: Any, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object directly (used by tests and embedding applications)."""
        info = self.plugins[name] = PluginInfo(name, distribution, version)
        self.known.add(name)
        if self.pm.is_blocked(name):
            info.disabled = self.disabled[name]
        else:
            self.pm.register(plugin, name=name)
        self._collected = False

    def disable(self, names: Iterable[str], why: str) -> None:
        """Switch plugins off by name: loaded ones are unregistered, later ones never load."""
        for name in names:
            if name == HOST:
                raise SuiteError(f"{why}: {HOST!r} is the host itself (its backbone presets), not a plugin one can disable")
            self.disabled.setdefault(name, why)
            self.pm.set_blocked(name)
            if name in self.plugins:
                self.plugins[name].disabled = self.disabled[name]
        self._collected = False

    # -- collecting --------------------------------------------------------------------------
    def _call_each(self, hook_name: str, add: Callable) -> None:
        """Call one hook on every plugin separately, so each registration knows its plugin.
        A plugin's registrations count only if its hook returns without raising."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # in registration order
            info = self.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            calls: list[tuple] = []
            try:
                impl.function(register=lambda *a: calls.append(a))
                for args in calls:
                    add(info, *args)
            except Exception as e:
                info.hook_errors[hook_name] = describe_error(e)
                warn(f"plugin {info.label} failed in {hook_name} and is skipped: {info.hook_errors[hook_name]}")

    def _collect(self) -> None:
        if self._collected:
            return
        found: dict[str, dict[str, Any]] = {"task": {}, "weight source": {}, "preset": {}, "command": {}}
        owners: dict[tuple[str, str], list[str]] = {}
        for info in self.plugins.values():
            info.tasks, info.weight_sources, info.presets, info.commands = [], [], [], []
            info.hook_errors = {}

        def claim(kind: str, name: str, info: PluginInfo, thing) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"a {kind} needs a non-empty name, not {name!r}")
            plugins = owners.setdefault((kind, name), [])
            if info.name not in plugins:
                plugins.append(info.name)
            found[kind][name] = thing

        def add_task(info, task):
            claim("task", task.name, info, task)
            task.plugin = info.name
            info.tasks.append(task.name)

        def add_source(info, source):
            claim("weight source", source.name, info, source)
            info.weight_sources.append(source.name)

        def add_preset(info, name, config):
            claim("preset", name, info, dict(config))
            info.presets.append(name)

        def add_command(info, name, help, configure, run):
            claim("command", name, info, Command(name, help, configure, run, info.name))
            info.commands.append(name)

        self._call_each("suite_register_presets", add_preset)
        self._call_each("suite_register_tasks", add_task)
        self._call_each("suite_register_weight_sources", add_source)
        self._call_each("suite_register_commands", add_command)

        # A name two plugins claim belongs to neither: it is unusable until one is disabled.
        self.conflicts: dict[tuple[str, str], list[str]] = {k: v for k, v in owners.items() if len(v) > 1}
        for (kind, name) in self.conflicts:
            del found[kind][name]
            warn(self.conflict_message(kind, name))
        self.tasks, self.weight_sources = found["task"], found["weight source"]
        self.presets, self.commands = found["preset"], found["command"]
        self._collected = True

    def conflict_message(self, kind: str, name: str) -> str:
        labels = [self.plugins[p].label for p in self.conflicts[(kind, name)]]
        return (f"{kind} {name!r} is registered by {len(labels)} plugins, {' and '.join(labels)}, so it is unusable; "
                f"switch one off with --disable-plugin NAME or {DISABLE_PLUGINS_ENV}=NAME, or uninstall it")

    def check_usable(self, kind: str, name: str) -> None:
        """Raise the conflict error if two plugins claim ``name``."""
        self._collect()
        if (kind, name) in self.conflicts:
            raise SuiteError(self.conflict_message(kind, name))

    # -- lookups -----------------------------------------------------------------------------
    def all_tasks(self) -> dict[str, Any]:
        self._collect()
        return dict(sorted(self.tasks.items()))

    def task(self, name: str):
        self.check_usable("task", name)
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


def get_registry(disabled: Iterable[str] = ()) -> Registry:
    """The process's registry; ``disabled`` plugin names are switched off in it."""
    global _registry
    if _registry is None:
        _registry = Registry(disabled=disabled)
    elif disabled:
        _registry.disable(disabled, "--disable-plugin")
    return _registry


def reset_registry(autoload: bool | None = None, disabled: Iterable[str] = ()) -> Registry:
    """A fresh registry (tests use this to register plugin objects in isolation)."""
    global _registry
    _registry = Registry(autoload, disabled)
    return _registry
