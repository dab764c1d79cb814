"""Settings: YAML from configs/ plus command-line overrides; one resolved dict per run.

Resolution order, later wins:
  configs/defaults.yaml < the task's ``defaults`` < the task's ``config_file`` (shipped in its
  plugin package) < configs/tasks/<task>.yaml < --config FILE < dotted overrides
  (``--trainer.max_steps 200``) < the backbone preset's fields for keys not set explicitly under
  ``backbone``.
The resolved dict is written to every run directory as config.yaml and is enough to rebuild the run.

A task's YAML files may hold a ``transfer:`` section, not a run setting: the task's settings in
each ``suite transfer`` profile, ``{profile: {dotted.key: value}}`` (``transfer_overrides``).
"""
from __future__ import annotations

import copy
import difflib
import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import SuiteError


def configs_dir():
    return resources.files("suite.configs")


def load_yaml(path) -> dict:
    try:
        text = Path(path).read_text() if not hasattr(path, "read_text") else path.read_text()
        data = yaml.safe_load(text) or {}
    except FileNotFoundError:
        raise SuiteError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a config file must hold a mapping at the top level")
    return data


def shipped_presets() -> dict[str, dict]:
    return {p.name[:-5]: load_yaml(p) for p in sorted(configs_dir().joinpath("backbone").iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml")}


def merge(base: dict, update: dict) -> dict:
    """Deep merge: mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``['--trainer.max_steps', '200', '--data.ops=+-']`` -> ``{'trainer.max_steps': 200, 'data.ops': '+-'}``.

    Values are read as YAML scalars, so ``200`` is an int, ``true`` a bool, ``[1, 2]`` a list.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise SuiteError(f"unexpected argument {arg!r}; settings are given as --section.key VALUE")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise SuiteError(f"--{key} needs a value")
            value = args[i + 1]
            i += 1
        try:
            out[key] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            out[key] = value
        if out[key] is None and value.lower() not in ("null", "none", "~"):
            out[key] = value
        if isinstance(out[key], str):  # YAML reads 1e-4 (no dot) as a string; a user means the number
            try:
                out[key] = float(out[key]) if out[key].strip().lower() not in ("nan", "inf", "-inf", "infinity") else out[key]
            except ValueError:
                pass
        i += 1
    return out


def _known_keys(cfg: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        keys.append(prefix + k)
        if isinstance(v, dict):
            keys += _known_keys(v, prefix + k + ".")
    return keys


def apply_overrides(cfg: dict, overrides: dict[str, Any]) -> dict:
    cfg = copy.deepcopy(cfg)
    known = _known_keys(cfg)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = cfg
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                node = None
                break
            node = node[part]
        if node is None or (parts[-1] not in node and parts[0] not in OPEN_SECTIONS):
            hint = difflib.get_close_matches(dotted, known, n=1)
            raise SuiteError(f"unknown setting --{dotted}" + (f"; did you mean --{hint[0]}?" if hint else " (see --print-config)"))
        old = node.get(parts[-1])
        if isinstance(old, (int, float)) and not isinstance(old, bool) and isinstance(value, str):
            raise SuiteError(f"--{dotted} takes a number (such as {old!r}), not {value!r}")
        node[parts[-1]] = value
    return cfg


# Sections whose keys are not all listed in the defaults (the Trainer takes many more options).
OPEN_SECTIONS = ("trainer", "backbone")


def task_files(task) -> list:
    """The YAML files that hold a task's own settings: the one its plugin package ships
    (``Task.config_file``, next to the module that defines the task), then configs/tasks/<task>.yaml."""
    files = []
    if getattr(task, "config_file", None):
        path = Path(inspect.getfile(type(task))).parent / task.config_file
        if not path.is_file():
            raise SuiteError(f"{path}: the config file of task {task.name!r} (Task.config_file) is missing; "
                             f"is it declared as package data of the plugin?")
        files.append(path)
    shipped = configs_dir().joinpath("tasks", f"{task.name}.yaml")
    if shipped.is_file():
        files.append(shipped)
    return files


def task_defaults(task) -> dict:
    """A task's own settings: its ``defaults``, then its YAML files (``transfer:`` left out)."""
    cfg = copy.deepcopy(getattr(task, "defaults", {}) or {})
    for path in task_files(task):
        cfg = merge(cfg, {k: v for k, v in load_yaml(path).items() if k != "transfer"})
    return cfg


def settings_help(task=None) -> str:
    """The settings a run reads, as their commented YAML files say them: configs/defaults.yaml and,
    for ``task``, its own files (their ``transfer:`` sections left out). ``suite train [--task T] --help``."""
    def text(path) -> str:
        lines, skipping = [], False
        for line in (path.read_text() if hasattr(path, "read_text") else Path(path).read_text()).splitlines():
            if line and not line[0].isspace() and not line.startswith("#"):
                skipping = line.startswith("transfer:")
            if not skipping:
                lines.append("  " + line)
        return "\n".join(lines).rstrip()

    parts = ["shared settings (configs/defaults.yaml), each overridden as --section.key VALUE:",
             text(configs_dir().joinpath("defaults.yaml"))]
    if task is not None:
        if getattr(task, "defaults", None):
            parts += [f"settings of task {task.name} ({type(task).__name__}.defaults):",
                      "\n".join("  " + l for l in dump(task.defaults).splitlines())]
        for path in task_files(task):
            parts += [f"settings of task {task.name} ({getattr(path, 'name', path)}), over the shared ones:", text(path)]
    else:
        parts.append("suite train --task T --help adds the settings of task T.")
    return "\n".join(parts)


def transfer_overrides(task, profile: str) -> dict[str, Any]:
    """The settings a task asks for in the ``suite transfer`` profile ``profile``, as dotted keys
    (``{"data.train_size": 2000}``), from the ``transfer:`` sections of its YAML files."""
    out: dict[str, Any] = {}
    for path in task_files(task):
        section = load_yaml(path).get("transfer") or {}
        if not isinstance(section, dict) or not all(isinstance(v, (dict, type(None))) for v in section.values()):
            raise SuiteError(f"{path}: `transfer:` must map profile names to settings, e.g. quick: {{data.train_size: 2000}}")
        out.update(section.get(profile) or {})
    return out


def resolve(task, *, config_file: str | None = None, overrides: dict | None = None, presets: dict | None = None) -> dict:
    """The full config for one run of ``task``."""
    cfg = load_yaml(configs_dir().joinpath("defaults.yaml"))
    cfg = merge(cfg, task_defaults(task))
    if config_file:
        cfg = merge(cfg, load_yaml(config_file))
    cfg = apply_overrides(cfg, overrides or {})
    cfg["task"] = task.name
    return expand_preset(cfg, presets)


def expand_preset(cfg: dict, presets: dict | None, explicit: dict | None = None) -> dict:
    """Fill ``cfg['backbone']`` from its named preset; keys set explicitly keep their values."""
    from .backbone import BackboneConfig

    presets = presets if presets is not None else shipped_presets()
    backbone = cfg.setdefault("backbone", {})
    name = backbone.get("preset")
    if name not in presets:
        raise SuiteError(f"unknown backbone preset {name!r}; known presets: {', '.join(sorted(presets))}")
    full = merge(BackboneConfig().to_dict(), presets[name])
    set_here = {k: v for k, v in backbone.items() if k != "preset"}
    allowed = BackboneConfig().to_dict()
    for key in set_here:
        if key not in allowed:
            hint = difflib.get_close_matches(key, list(allowed), n=1)
            raise SuiteError(f"unknown setting backbone.{key}" + (f"; did you mean backbone.{hint[0]}?" if hint else ""))
    cfg["backbone"] = {"preset": name, **merge(full, set_here)}
    return cfg


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
