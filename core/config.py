"""Settings: typed sections parsed by jsonargparse; one resolved dict per run.

Resolution order, later wins:
  the shared sections' defaults (core/settings.py; configs/defaults.yaml for ``trainer``) < the
  task's ``settings`` dataclasses < its ``defaults`` < its ``config_file`` (shipped in its plugin
  package) < configs/tasks/<task>.yaml < --config FILE < dotted overrides (``--trainer.max_steps
  200``) < the backbone preset's fields for keys not set explicitly under ``backbone``.
The first layers *declare* the settings (a key they hold is a setting of the task; a key without a
dataclass field is typed by its value); --config FILE and the command line only *set* them: an
unknown key is an error with a suggestion, a value of the wrong type one line naming key, value and
type. The resolved dict is written to every run directory as config.yaml and is enough to rebuild
the run. docs/settings.md describes the design.

A task's YAML files may hold a ``transfer:`` section, not a run setting: the task's settings in
each ``suite transfer`` profile, ``{profile: {dotted.key: value}}`` (``transfer_overrides``).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import re
import typing
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Optional, Union

import yaml

from .errors import SuiteError, warn
from .settings import BACKBONE_FIELDS, SEED_HELP, SECTIONS, TRAINER_OWN


def configs_dir():
    return resources.files("suite.configs")


def load_yaml(path, hint: str = "") -> dict:
    """The mapping in a YAML file; one line naming the file otherwise, ending with ``hint`` (what
    to do) where given: a run directory's config.yaml is damaged, a user's file mistyped."""
    end = f"; {hint}" if hint else ""
    try:
        text = Path(path).read_text() if not hasattr(path, "read_text") else path.read_text()
        data = yaml.safe_load(text) or {}
    except FileNotFoundError:
        raise SuiteError(f"{path}: config file not found{end}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not valid YAML (binary garbage, not text){end}") from None
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SuiteError(f"{path}: not valid YAML ({problem}{where}){end}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a config file must hold a mapping at the top level{end}")
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
    """``['--top', '3', '--data.ops=+-']`` -> ``{'top': 3, 'data.ops': '+-'}``: untyped options
    (``suite predict RUN INPUT --key VALUE``). Values are read as YAML scalars, so ``200`` is an
    int, ``true`` a bool, ``[1, 2]`` a list. Run settings are parsed by their types (``parse``)."""
    out: dict[str, Any] = {}
    for key, value in split_args(args):
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
    return out


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


# -- the typed settings ---------------------------------------------------------------------------

def shared_defaults() -> dict:
    """The shared sections' defaults: the dataclasses of core/settings.py, the trainer's from
    configs/defaults.yaml."""
    cfg: dict = {"seed": 0}
    for name, cls in SECTIONS.items():
        cfg[name] = {key: default for key, (_, default, _) in section_fields(cls).items()}
    cfg["trainer"] = load_yaml(configs_dir().joinpath("defaults.yaml")).get("trainer") or {}
    return cfg


def task_settings(task) -> dict[str, type]:
    """``Task.settings``, checked: ``{section: dataclass}``."""
    own = dict(getattr(task, "settings", None) or {})
    for section, cls in own.items():
        if section in ("trainer", "backbone", "seed", "task") or not dataclasses.is_dataclass(cls):
            raise SuiteError(f"task {task.name!r}: Task.settings[{section!r}] must be a dataclass for a section "
                             f"other than trainer, backbone, seed and task")
    return own


def declared(task=None) -> dict:
    """Every setting a run of ``task`` has, at its default: the shared sections, the task's
    ``settings`` dataclasses, then its ``defaults`` and YAML files."""
    cfg = shared_defaults()
    if task is None:
        return cfg
    for section, cls in task_settings(task).items():
        cfg[section] = merge(cfg.get(section) or {}, {k: d for k, (_, d, _) in section_fields(cls).items()})
    return merge(cfg, task_defaults(task))


def section_fields(*classes) -> dict[str, tuple[Any, Any, str]]:
    """``{key: (type, default, help)}`` of dataclasses, later classes winning; a field named
    ``from_`` is the key ``from``. The help is the field's docstring (the line under it)."""
    import docstring_parser

    out: dict[str, tuple[Any, Any, str]] = {}
    for cls in classes:
        if cls is None:
            continue
        docs = {}
        for base in reversed(cls.__mro__):
            if dataclasses.is_dataclass(base):
                docs.update({p.arg_name: p.description or "" for p in docstring_parser.parse_from_object(base).params})
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                raise SuiteError(f"{cls.__qualname__}.{f.name}: a setting needs a default")
            out[f.name.rstrip("_")] = (hints[f.name], default, docs.get(f.name, ""))
    return out


def value_type(value) -> Any:
    """The type of a setting declared by its value alone (``Task.defaults``, a task's YAML file):
    a number takes numbers (or null); anything else is read as YAML, untyped, as it always was."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Optional[Union[int, float]] if isinstance(value, int) else Optional[float]
    return Any


def trainer_types() -> dict[str, Any]:
    """lightning.Trainer's arguments that are settings, with their types."""
    import pytorch_lightning as pl

    hints = typing.get_type_hints(pl.Trainer.__init__)
    return {name: hints.get(name, Any) for name in inspect.signature(pl.Trainer).parameters if name not in TRAINER_OWN}


def build_parser(task=None, defaults: dict | None = None):
    """The jsonargparse parser of a run's settings: a group per section, ``--section.key`` per
    setting, typed, with help. Returns (parser, {dotted key: type})."""
    import pytorch_lightning as pl
    from jsonargparse import ArgumentParser

    defaults = declared(task) if defaults is None else defaults
    parser = ArgumentParser(prog="suite train", exit_on_error=False, default_env=False)
    types: dict[str, Any] = {}

    def add(group, key, tp, default, help_text):
        group.add_argument(f"--{key}", type=tp, default=copy.deepcopy(default), help=help_text)
        types[key] = tp

    add(parser, "seed", int, defaults.get("seed", 0), SEED_HELP)
    own = task_settings(task) if task is not None else {}
    names = [*SECTIONS, *own, *(k for k, v in defaults.items() if isinstance(v, dict))]
    for name in dict.fromkeys(names):
        values = defaults.get(name) or {}
        if name == "trainer":
            parser.add_class_arguments(pl.Trainer, "trainer", skip=set(TRAINER_OWN))
            parser.groups["trainer"].title = "trainer: lightning.Trainer's options (devices, precision, strategy, ...)"
            parser.set_defaults({f"trainer.{k}": v for k, v in values.items()})
            types.update({f"trainer.{k}": tp for k, tp in trainer_types().items()})
            continue
        fields = section_fields(SECTIONS.get(name), own.get(name))
        if name == "backbone":
            fields.update({k: (tp, None, "null: the preset's") for k, tp in BACKBONE_FIELDS.items()})
        fields.update({k: (value_type(v), v, "") for k, v in values.items() if k not in fields})
        cls = own.get(name) or SECTIONS.get(name)
        title = (inspect.getdoc(cls) or "").splitlines()[0] if cls is not None else ""
        group = parser.add_argument_group(title or f"{name}: settings of task {getattr(task, 'name', '')}")
        for key, (tp, default, help_text) in fields.items():
            add(group, f"{name}.{key}", tp, values.get(key, default), help_text)
    for key, value in defaults.items():  # a top-level setting a task declares by its value
        if key not in types and key != "task" and not isinstance(value, dict):
            add(parser, key, value_type(value), value, "")
    return parser, types


def split_args(args: list[str]) -> list[tuple[str, str]]:
    """``['--trainer.max_steps', '200', '--data.ops=+-']`` -> ``[('trainer.max_steps', '200'), ('data.ops', '+-')]``."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise SuiteError(f"unexpected argument {arg!r}; settings are given as --section.key VALUE")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and len(args[i + 1]) > 2):
                raise SuiteError(f"--{key} needs a value")
            value = args[i + 1]
            i += 1
        out.append((key, value))
        i += 1
    return out


def flatten(cfg: dict, origin: str) -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (sections are one level deep)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif key in SECTIONS:
            raise SuiteError(f"{origin}: `{key}` is a section; it holds settings as a mapping ({key}: {{KEY: VALUE}})")
        else:
            out[key] = value
    return out


def nest(dotted: dict[str, Any]) -> dict:
    """``{"optim.lr": 1}`` -> ``{"optim": {"lr": 1}}``."""
    out: dict = {}
    for key, value in dotted.items():
        section, dot, name = key.partition(".")
        if dot:
            out.setdefault(section, {})
            if isinstance(out[section], dict):
                out[section][name] = value
                continue
        out[key] = value
    return out


def unknown_setting(key: str, types: dict, origin: str = "") -> str:
    hint = difflib.get_close_matches(key, list(types), n=1)
    where = f"{origin}: " if origin else ""
    return f"{where}unknown setting --{key}" + (f"; did you mean --{hint[0]}?" if hint else " (see suite train --task T --help)")


def describe(tp) -> str:
    """A type as the error line says it: ``a float``, ``an integer or null``, ``one of cosine, constant``."""
    names = {bool: "true or false", int: "an integer", float: "a float", str: "a string", dict: "a mapping",
             list: "a list", type(None): "null", Any: "a value"}
    if tp in names:
        return names[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, UnionType):
        parts = list(dict.fromkeys(describe(a) for a in args))
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if origin in (list, tuple, set):
        return "a list" + (f" of {describe(args[0]).split(' ', 1)[-1]}s" if args and args[0] in (int, float, str) else "")
    return f"a {getattr(tp, '__name__', str(tp))}"


def type_error(e: Exception, types: dict, given: dict[str, Any], origins: dict[str, str]) -> SuiteError:
    """jsonargparse's error -> one line: ``optim.lr: 'abc' is not a float``."""
    text = str(e)
    match = re.search(r'Parser key "([^"]+)"', text)
    if not match or match.group(1) not in types:
        return SuiteError(text.strip().splitlines()[0] if text.strip() else type(e).__name__)
    key = match.group(1)
    where = f"{origins[key]}: " if key in origins else ""
    return SuiteError(f"{where}{key}: {given.get(key)!r} is not {describe(types[key])}")


def parse(task, values: dict | None = None, args: list[str] = (), *, origin: str = "",
          origins: dict[str, str] | None = None, unknown: str = "error") -> dict:
    """The settings of a run of ``task``: its declared settings, set by ``values`` (a config:
    --config FILE and dotted overrides, or a run directory's config.yaml) and then by the
    command line's ``--section.key VALUE`` ``args``. ``unknown="warn"``: keys ``values`` has that
    are not settings of this version (a run directory of an older one) are dropped with a warning
    instead of an error.
    ``origin`` names where ``values`` come from, ``origins`` where single keys do, in error lines."""
    from jsonargparse import ArgumentError


    defaults = declared(task)
    parser, types = build_parser(task, defaults)
    values = {k: v for k, v in (values or {}).items() if k != "task"}
    flat = flatten(values, origin or "config")
    origins = {k: (origins or {}).get(k, origin) for k in flat}
    for key in [k for k in flat if k not in types]:
        if unknown != "warn":
            raise SuiteError(unknown_setting(key, types, origins[key]))
        warn(f"{origin}: {key} is no longer a setting; ignored")
        del flat[key]
    pairs = split_args(list(args))
    for key, _ in pairs:
        if key not in types:
            raise SuiteError(unknown_setting(key, types))
    given = {**flat, **dict(pairs)}
    origins.update({k: "" for k, _ in pairs})
    try:
        namespace = parser.parse_object(nest(flat))  # the values checked against their types
        namespace = parser.parse_args([f"--{k}={v}" for k, v in pairs], namespace=namespace)
    except (ArgumentError, TypeError, ValueError) as e:
        raise type_error(e, types, given, {k: v for k, v in origins.items() if v}) from None
    got = namespace.as_dict()
    trainer_keys = [*defaults.get("trainer", {}), *values.get("trainer", {}), *(k[8:] for k, _ in pairs if k.startswith("trainer."))]
    got["trainer"] = {k: got["trainer"][k] for k in dict.fromkeys(trainer_keys)}
    for key, raw in pairs:  # Trainer options typed `str | int` (devices) take the number a user means
        if key.startswith("trainer.") and isinstance(got["trainer"][key[8:]], str):
            number = yaml.safe_load(raw) if re.fullmatch(r"-?\d+(\.\d*)?", raw.strip()) else None
            got["trainer"][key[8:]] = number if number is not None else got["trainer"][key[8:]]
    got["backbone"] = {k: v for k, v in got["backbone"].items() if v is not None}
    order = ["seed", *SECTIONS, *(k for k in got if k not in SECTIONS and k != "seed")]
    return {k: got.get(k, {}) for k in order}


def complete(cfg: dict, origin: str) -> dict:
    """A run directory's config completed for this version: settings the run's config lacks take
    their defaults, and keys of the shared sections that are not settings of this version are
    dropped with a warning, so that run directories of older versions keep loading. (The task's own sections are
    completed by ``declared(task)`` where the task is known: ``runs.load_run``, ``parse``.)"""

    cfg = copy.deepcopy(cfg)
    for name in ("optim", "init", "adapt", "run", "backbone"):
        known = section_fields(SECTIONS[name]).keys() | (BACKBONE_FIELDS.keys() if name == "backbone" else set())
        section = cfg.get(name)
        for key in [k for k in section if k not in known] if isinstance(section, dict) else []:
            warn(f"{origin}: {name}.{key} is no longer a setting; ignored")
            del section[key]
    return merge(shared_defaults(), cfg)


def resolve(task, *, config_file: str | None = None, overrides: dict | None = None, presets: dict | None = None,
            args: list[str] = ()) -> dict:
    """The full config for one run of ``task``: its declared settings < ``config_file`` <
    ``overrides`` (dotted keys, typed values) < ``args`` (the command line's ``--section.key VALUE``)."""
    values = load_yaml(config_file) if config_file else {}
    origins = dict.fromkeys(flatten(values, str(config_file)), str(config_file))
    for key, value in (overrides or {}).items():
        origins.pop(key, None)
        section, dot, name = key.partition(".")
        if dot and isinstance(values.get(section), dict):
            values[section][name] = value
        else:
            values = merge(values, nest({key: value}))
    cfg = parse(task, values, args, origins=origins)
    cfg["task"] = task.name
    return expand_preset(cfg, presets)


def settings_help(task=None) -> str:
    """``suite train [--task T] --help``: every setting with its type, default and help."""
    parser, _ = build_parser(task)
    text = parser.format_help()
    text = text[text.index("\n\n") + 2:]  # from the first group on: the usage line would list them all again
    text = "\n".join(line for line in text.splitlines() if "Show this help message and exit" not in line
                     and not re.match(r"\s+--\S+ CONFIG\s+Path to a configuration file", line)
                     and not re.match(r"\s+-h, --help\s*$", line))
    lead = (f"settings of a run of task {task.name}" if task is not None else "settings shared by every task") + \
        ", each set as --section.key VALUE or in --config FILE:"
    tail = "" if task is not None else "\nsuite train --task T --help adds the settings of task T and its defaults."
    return f"{lead}\n\n{text.strip()}\n{tail}"



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
