"""The plan of a transfer experiment: which runs it makes, each a pure function of its config.

An experiment is a profile in configs/transfer/ (or a YAML file) plus command-line overrides.
For every target task it makes one arm per (source, adaptation method: ``adapt``, core/adapt.py) and
a `scratch` arm per backbone architecture those arms use (with ``random_controls``, also one per
method other than full, or per method it lists: the same architecture from random init, adapted the
same way, FPT's control); every arm is trained for every
learning rate and seed (a `Cell`), and with ``train_sizes`` at every target training-set size
(``data.train_limit``), scratch also at ``scratch_sizes``, each run ``size_steps`` long for its
size. Task sources are pretrained once per (task, preset, budget, seed) (a `SourceRun`) and shared
by every cell that starts from them.

A sequence-to-sequence target (its task's objective is ``suite.Seq2Seq``) runs on the encoder-decoder
preset ``seq2seq_preset`` (default: ``transformer-<preset>``). Its arms are scratch on that preset and,
for each source, one *side arm* per entry of ``sides``: the source starts the encoder, the decoder or
both (``init.encoder_from``, ``init.decoder_from``), the rest starts fresh, and everything trains
(adapt ``full``: freezing the backbone would freeze the fresh side and the cross-attention too, so
other methods have no side arms). A sequence-to-sequence task as a source is pretrained on that
preset and gives side arms only (an encoder-decoder does not load into a single stack). What the
plan leaves out is said in ``notes``.
"""
from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..errors import SuiteError
from ..adapt import FROM_FREEZE, split

SCRATCH = "scratch"
EXECUTORS = ("auto", "local", "ray")
MEASURES = ("gain", "effective-data", "auc")

# Every key an experiment may set, with its default; a profile must set those in REQUIRED.
DEFAULTS = {
    "profile": "custom",
    "preset": None,
    "positions": "learned",   # backbone.positions of every task run, so that every backbone loads into every task
    "sources": None,          # tasks and weight sources, or "all"
    "targets": None,          # tasks, or "all"
    "adapt": ["full"],        # adaptation methods: the arms of each source (core/adapt.py)
    "freeze": None,           # the older name of adapt: none, backbone, fpt (full, frozen, fpt)
    "sides": ["encoder"],     # sequence-to-sequence targets: which side each source starts (encoder, decoder, both)
    "seq2seq_preset": None,   # the encoder-decoder preset of sequence-to-sequence tasks; None: transformer-<preset>
    "seeds": None,
    "lrs": None,
    "lrs_by_adapt": {},       # method -> its own sweep (frozen arms, random controls included, want higher rates)
    "lrs_by_freeze": None,    # the older name of lrs_by_adapt, keyed by freeze mode
    "source_steps": None,
    "target_steps": None,     # fine-tuning budget of every arm, scratch included
    "steps_by_target": {},    # target -> its own budget instead of target_steps (every arm of it alike)
    "evals": 4,               # validation checks per target run: the points of each curve
    "train_sizes": None,      # target training-set sizes (data.train_limit) for every arm, or {target: sizes}; None: all the data
    "scratch_sizes": [],      # more sizes for the scratch arms alone: scratch's score against data, to read effective data off
    "size_steps": {},         # how a run's steps follow its size: {epochs: E, min: M}; budget = min(target budget, max(M, E * size / batch))
    "random_controls": False, # a random-init arm of each source architecture per method but full (or per method listed: FPT's control)
    "skip_self": True,        # no arm pretrains on its own target
    "overrides": {},          # settings for every run
    "task_overrides": {},     # settings for one task's runs, sources and targets alike
    "reference": {},          # task -> its default `suite train` run's directory (read for the report; a number: typed in)
    "out": None,
    "executor": "auto",       # auto | local | ray: where runs execute; does not change what a cell means
    "resources": {"cpus": 1, "gpus": 0},  # per run, for --executor ray
    "ray_address": None,      # None: start a local Ray; "auto": join a running cluster
    "measure": "gain",        # what heatmap.png shows: gain | effective-data | auc
    "bootstrap": 0,           # resamples for bootstrap intervals of each gain (0: none)
}
REQUIRED = ("preset", "sources", "targets", "seeds", "lrs", "source_steps", "target_steps")
LIST_KEYS = ("sources", "targets", "adapt", "seeds", "lrs")
SIZE_KEYS = ("train_sizes", "scratch_sizes")
SIDES = {"encoder": ("encoder",), "decoder": ("decoder",), "both": ("encoder", "decoder")}  # a side arm -> the stacks it starts


JOINT = "joint:"  # a source `joint:A+B+C`: one backbone pretrained on tasks A, B and C together (core/joint.py)


def joint_tasks(source: str) -> list[str] | None:
    """``joint:A+B+C`` -> ``[A, B, C]``; None for any other source."""
    return source[len(JOINT):].split("+") if source.startswith(JOINT) else None


def pretrained_here(source: str, tasks) -> bool:
    """A source the experiment pretrains itself (a task, or a joint run of tasks), not a weight source."""
    return source in tasks or source.startswith(JOINT)


def is_seq2seq(task) -> bool:
    """A sequence-to-sequence task: its objective is ``suite.Seq2Seq`` or a subclass (it runs on an encoder-decoder)."""
    from ..tasks.seq2seq import Seq2Seq

    objective = getattr(task, "objective", None)
    return isinstance(objective, type) and issubclass(objective, Seq2Seq)


def preset_of(exp: dict, task) -> str:
    """The backbone preset of every run of ``task``: ``seq2seq_preset`` for a sequence-to-sequence task."""
    return (exp.get("seq2seq_preset") or exp["preset"]) if is_seq2seq(task) else exp["preset"]


@dataclass(frozen=True)
class Cell:
    """One target run: an arm (scratch, or a source under an adaptation method) at one lr and seed, on
    ``size`` training samples of the target (None: all) for ``steps`` steps (None: the target's budget).
    ``side``: a sequence-to-sequence target's side arm, the stacks the source starts (a key of
    ``SIDES``); None for every other arm (the source starts the whole backbone, ``init.from``)."""

    target: str
    source: str  # SCRATCH, a task name or a weight source
    adapt: str
    lr: float
    seed: int
    arch: str  # the backbone architecture this arm uses: the preset, or "source:NAME" for a weight source's own
    size: int | None = None
    steps: int | None = None
    side: str | None = None

    @property
    def arm(self) -> str:
        if self.source == SCRATCH:
            arm = SCRATCH if self.arch_is_preset else f"{SCRATCH} ({self.arch})"
            return arm if self.adapt == "full" else f"{arm}/{self.adapt}"  # a random control, adapted like a source
        return f"{self.source}/{self.adapt}" + ("" if self.side is None else f"@{self.side}")

    @property
    def init_keys(self) -> tuple[str, ...]:
        """The settings that the source's path or name goes into."""
        if self.source == SCRATCH:
            return ()
        return ("init.from",) if self.side is None else tuple(f"init.{stack}_from" for stack in SIDES[self.side])

    @property
    def arch_is_preset(self) -> bool:
        return not self.arch.startswith("source:")

    @property
    def id(self) -> str:
        arm = self.arm.replace("/", "-").replace(" ", "").replace("(", "@").replace(")", "").replace(":", "-")
        return f"{self.target}__{arm}__lr{self.lr:g}__s{self.seed}" + ("" if self.size is None else f"__n{self.size}")

    @property
    def panel(self) -> str:
        """The table this run belongs to: its target, at its training-set size."""
        return panel(self.target, self.size)

    @property
    def label(self) -> str:
        if self.source == SCRATCH:
            return "scratch" if self.adapt == "full" else f"random control ({self.adapt})"
        return f"fine-tune ({self.adapt})"


def panel(target: str, size: int | None) -> str:
    return target if size is None else f"{target} (n={size})"


@dataclass(frozen=True)
class SourceRun:
    """The pretraining of one task source for one seed; every cell with that source and seed reuses it.
    A joint source (``joint:A+B``) trains ``steps`` per task: ``steps`` times the tasks in all."""

    task: str
    seed: int
    steps: int
    preset: str

    label = "source pretraining"

    @property
    def name(self) -> str:
        return f"{self.task.replace(':', '-')}-{self.preset}-{self.steps}steps-s{self.seed}"

    @property
    def tasks(self) -> list[str]:
        return joint_tasks(self.task) or [self.task]

    def path(self, out: Path) -> Path:
        return Path(out) / "sources" / "+".join(self.tasks) / self.name  # <run.root>/<the run's task>/<name>


# -- the experiment config ------------------------------------------------------------------------
def profiles() -> list[str]:
    return sorted(p.name[:-5] for p in config_mod.configs_dir().joinpath("transfer").iterdir() if p.name.endswith(".yaml"))


def profile_path(name: str):
    return config_mod.configs_dir().joinpath("transfer", f"{name}.yaml")


def load_experiment(profile: str | None, config_file: str | None, overrides: dict) -> dict:
    """The profile, merged with --config FILE, then the command line's overrides; checked."""
    exp: dict = {}
    if profile:
        if not profile_path(profile).is_file():
            raise SuiteError(f"unknown transfer profile {profile!r}; known: {', '.join(profiles())}")
        exp = config_mod.load_yaml(profile_path(profile))
    if config_file:
        exp = config_mod.merge(exp, config_mod.load_yaml(config_file))
    origin = config_file or (f"configs/transfer/{profile}.yaml" if profile else "the command line")
    for key in exp:
        if key not in DEFAULTS:
            hint = difflib.get_close_matches(key, list(DEFAULTS), n=1)
            raise SuiteError(f"{origin}: unknown experiment key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    _expect(origin, "resources", exp.get("resources"), (dict, type(None)), "a mapping, {cpus: N, gpus: N}")
    _expect(origin, "reference", exp.get("reference"), (dict, type(None)), "a mapping, {TASK: RUN_DIR}")
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "reference":  # --reference adds to the profile's
            exp["reference"] = {**(exp.get("reference") or {}), **{t: _reference("--reference", t, v) for t, v in value.items()}}
        elif key.startswith("resources."):
            exp["resources"] = {**DEFAULTS["resources"], **(exp.get("resources") or {}), key.split(".", 1)[1]: value}
        else:
            exp[key] = value
    exp = older_names({**copy.deepcopy(DEFAULTS), **exp}, origin)
    exp["resources"] = {**DEFAULTS["resources"], **(exp.get("resources") or {})}
    return check(exp, origin)


def older_names(exp: dict, origin: str) -> dict:
    """``freeze`` and ``lrs_by_freeze`` (none, backbone, fpt) as ``adapt`` and ``lrs_by_adapt`` (full, frozen, fpt)."""
    def method(mode):
        if mode not in FROM_FREEZE:
            raise SuiteError(f"{origin}: freeze mode must be one of {', '.join(FROM_FREEZE)}, not {mode!r} "
                             "(adapt takes full, frozen, fpt, lora, bitfit, orca)")
        return FROM_FREEZE[mode]

    if exp.get("freeze") is not None:
        exp["adapt"] = [method(m) for m in _as_list("freeze", exp["freeze"])]
    if exp.get("lrs_by_freeze") is not None:
        _expect(origin, "lrs_by_freeze", exp["lrs_by_freeze"], dict, "a mapping")
        exp["lrs_by_adapt"] = {**{method(m): v for m, v in exp["lrs_by_freeze"].items()}, **(exp.get("lrs_by_adapt") or {})}
    exp["freeze"] = exp["lrs_by_freeze"] = None
    return exp


def _as_list(key: str, value) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise SuiteError(f"{key}: give a list or comma-separated values, not {value!r}")


def _number(key: str, value, kind, low=None):
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise SuiteError(f"{key}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if low is not None and not number >= low:
        raise SuiteError(f"{key}: {value!r} must be at least {low}")
    return number


def _sizes(key: str, value) -> list[int]:
    value = [] if value in (None, "", []) else _as_list(key, value)
    return sorted({_number(key, v, int, 1) for v in value})


def sizes_of(exp: dict, key: str, target: str) -> list[int]:
    """``train_sizes`` or ``scratch_sizes`` of one target."""
    value = exp.get(key) or []
    return list(value.get(target) or []) if isinstance(value, dict) else list(value)


def _expect(origin: str, key: str, value, types, what: str) -> None:
    """One line naming the key, the value and what it must be, if ``value`` is not of ``types``."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))):
        raise SuiteError(f"{origin}: {key}: {value!r} is not {what}")


NUMERIC = re.compile(r"[-+]?(\d|\.\d)")  # how a typed-in figure starts


def _reference(origin: str, task: str, value):
    """``reference.TASK``: a positive test score (a number, or a string that is one: ``--reference
    TASK=0.8``) or a run directory (or its metrics.json), read when the report is made. A string
    that starts as a number but is neither one nor an existing path is a mistyped figure."""
    what = "a run directory or a positive test score"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            if NUMERIC.match(value.strip()) and not Path(value).exists():
                raise SuiteError(f"{origin}: reference.{task}: {value!r} is not {what}") from None
            return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SuiteError(f"{origin}: reference.{task}: {value!r} is not {what}")
    return value


def _rates(key: str, values: list) -> list[float]:
    rates = [_number(key, x, float) for x in values]
    if not rates or any(lr <= 0 for lr in rates):
        raise SuiteError(f"{key}: learning rates must be positive, not {rates}")
    if len(set(rates)) != len(rates):
        raise SuiteError(f"{key}: {rates} lists a value twice")
    return rates


def check(exp: dict, origin: str = "experiment") -> dict:
    """Normalise lists and numbers; one clear line for anything wrong."""
    for key in REQUIRED:
        if exp.get(key) is None:
            raise SuiteError(f"{origin}: the experiment does not set {key!r}")
    # the types of the keys that are not numbers (those are parsed below), before anything runs
    for key in ("profile", "preset", "positions", "executor", "measure"):
        _expect(origin, key, exp[key], str, "a string")
    for key in ("out", "ray_address", "seq2seq_preset"):
        _expect(origin, key, exp[key], (str, type(None)), "a string")
    _expect(origin, "skip_self", exp["skip_self"], bool, "true or false")
    _expect(origin, "random_controls", exp["random_controls"], (bool, list, str), "true, false or a list of methods")
    for key in ("lrs_by_adapt", "steps_by_target", "size_steps", "overrides", "task_overrides", "reference"):
        _expect(origin, key, exp[key], (dict, type(None)), "a mapping")
    for task, settings in (exp["task_overrides"] or {}).items():
        _expect(origin, f"task_overrides.{task}", settings, (dict, type(None)), "a mapping of settings, {data.batch_size: 32}")
    for key in LIST_KEYS:
        exp[key] = _as_list(key, exp[key]) if exp[key] not in ("all", ["all"]) else "all"
        if not exp[key]:
            raise SuiteError(f"{key}: empty")
    for key in ("sources", "targets", "adapt"):
        for name in exp[key] if exp[key] != "all" else ():
            _expect(origin, key, name, str, "a name (a list of names, or comma-separated names)")
    if exp["sources"] == "all":
        exp["sources"] = ["all"]
    if exp["targets"] == "all":
        exp["targets"] = ["all"]
    exp["seeds"] = [_number("seeds", s, int) for s in exp["seeds"]]
    exp["lrs"] = _rates("lrs", exp["lrs"])
    if len(set(exp["seeds"])) != len(exp["seeds"]):
        raise SuiteError(f"seeds: {exp['seeds']} lists a value twice")
    for method in exp["adapt"]:
        split(method)
    if not isinstance(exp["random_controls"], bool):
        exp["random_controls"] = _as_list("random_controls", exp["random_controls"])
        for method in exp["random_controls"]:
            if split(method)[0] or method not in exp["adapt"]:
                raise SuiteError(f"{origin}: random_controls: {method!r} is not a method of adapt ({', '.join(exp['adapt'])}) "
                                 "without an align stage (random init has no modality of its own to align to)")
    exp["sides"] = list(dict.fromkeys(_as_list("sides", exp["sides"] if exp["sides"] is not None else [])))
    if not exp["sides"]:
        raise SuiteError(f"{origin}: sides: empty; give one or more of {', '.join(SIDES)}")
    for side in exp["sides"]:
        if side not in SIDES:
            raise SuiteError(f"{origin}: sides: {side!r} is not a side of an encoder-decoder; give {', '.join(SIDES)}")
    by_method = exp.get("lrs_by_adapt") or {}
    for method in by_method:
        split(method)
    exp["lrs_by_adapt"] = {m: _rates(f"lrs_by_adapt.{m}", _as_list(f"lrs_by_adapt.{m}", v)) for m, v in by_method.items()}
    for key in SIZE_KEYS:  # a list for every target, or {target: list} (a target not named: all its data)
        value = exp.get(key)
        if isinstance(value, dict):
            exp[key] = {t: _sizes(f"{key}.{t}", v) for t, v in value.items()}
        else:
            exp[key] = _sizes(key, value)
    if exp["scratch_sizes"] and not exp["train_sizes"]:
        raise SuiteError(f"{origin}: scratch_sizes adds sizes to train_sizes; set train_sizes too")
    steps = exp.get("size_steps") or {}
    if not isinstance(steps, dict) or set(steps) - {"epochs", "min"}:
        raise SuiteError(f"{origin}: size_steps is {{epochs: E, min: M}}: a run of n samples trains "
                         "min(budget, max(M, E * n / batch_size)) steps")
    exp["size_steps"] = {k: _number(f"size_steps.{k}", v, float if k == "epochs" else int, 0) for k, v in steps.items()}
    exp["source_steps"] = _number("source_steps", exp["source_steps"], int, 1)
    exp["target_steps"] = _number("target_steps", exp["target_steps"], int, 1)
    exp["evals"] = _number("evals", exp["evals"], int, 1)
    if not isinstance(exp.get("steps_by_target") or {}, dict):
        raise SuiteError(f"{origin}: steps_by_target must be a mapping of target to steps")
    exp["steps_by_target"] = {t: _number(f"steps_by_target.{t}", v, int, 1) for t, v in (exp.get("steps_by_target") or {}).items()}
    for steps in (exp["target_steps"], *exp["steps_by_target"].values()):
        if exp["evals"] > steps:
            raise SuiteError(f"evals: {exp['evals']} validation checks do not fit in {steps} target steps")
    if exp["executor"] not in EXECUTORS:
        raise SuiteError(f"executor must be one of {', '.join(EXECUTORS)}, not {exp['executor']!r}")
    if exp["measure"] not in MEASURES:
        raise SuiteError(f"measure must be one of {', '.join(MEASURES)}, not {exp['measure']!r}")
    res = exp["resources"]
    unknown = set(res) - {"cpus", "gpus"}
    if unknown:
        raise SuiteError(f"resources: unknown key {sorted(unknown)[0]!r}; give resources.cpus and resources.gpus")
    res["cpus"] = _number("resources.cpus", res["cpus"], float, 0)
    res["gpus"] = _number("resources.gpus", res["gpus"], float, 0)
    if res["cpus"] == 0 and res["gpus"] == 0:
        raise SuiteError("resources: a run needs some cpus or gpus")
    if res["gpus"] > 1 and not float(res["gpus"]).is_integer():
        raise SuiteError(f"resources.gpus: a fraction must be below 1 (several runs share one GPU), not {res['gpus']:g}")
    exp["bootstrap"] = _number("bootstrap", exp["bootstrap"], int, 0)
    for key in ("overrides", "task_overrides", "reference"):
        if not isinstance(exp.get(key) or {}, dict):
            raise SuiteError(f"{origin}: {key} must be a mapping")
        exp[key] = exp.get(key) or {}
    exp["reference"] = {task: _reference(origin, task, value) for task, value in exp["reference"].items()}
    return exp


# -- resolving names ------------------------------------------------------------------------------
_PROBED: dict[str, str | None] = {}
_BACKBONES: dict[str, dict | str] = {}  # weight source spec -> its backbone config, or why it does not load


def source_backbone(spec: str, registry) -> dict | str:
    """A weight source's backbone config, or why it does not load; loaded once per process."""
    if spec not in _BACKBONES:
        from .. import runs

        try:
            _BACKBONES[spec] = dict(runs.load_source(spec, registry).backbone)
        except SuiteError as e:
            _BACKBONES[spec] = str(e)
    return _BACKBONES[spec]


def needs_argument(source) -> str | None:
    """Why a weight source cannot load as a bare NAME (it wants NAME:ARGUMENT, or is not installed),
    or None when it can. Asked once per source and process."""
    cache = _PROBED
    if source.name not in cache:
        try:
            _BACKBONES[source.name] = dict(source.load("").backbone)
            cache[source.name] = None
        except SuiteError as e:
            cache[source.name] = str(e)
        except Exception as e:  # a broken source is left out of "all" too, with its reason
            cache[source.name] = f"{type(e).__name__}: {e}".splitlines()[0]
    return cache[source.name]


def expand(exp: dict, registry) -> dict:
    """Resolve "all" in sources and targets and check every name.

    "all" sources are every task and every weight source that loads as a bare NAME: a source
    that needs an argument (``hf:PATH``) cannot be part of "all" and is listed in ``left_out``."""
    tasks = registry.all_tasks()
    weight_sources = registry.all_weight_sources()
    targets = list(tasks) if exp["targets"] == ["all"] else list(exp["targets"])
    left_out = {}
    if exp["sources"] == ["all"]:
        sources = list(tasks)
        for name, source in weight_sources.items():
            reason = needs_argument(source)
            if reason is None:
                sources.append(name)
            else:
                left_out[name] = reason
    else:
        sources = [s for s in exp["sources"] if s != SCRATCH]
    for t in targets:
        registry.task(t)
    for key in ("steps_by_target", *SIZE_KEYS):
        for t in exp.get(key) if isinstance(exp.get(key), dict) else ():
            if t not in targets:
                raise SuiteError(f"{key}: {t!r} is not a target of this experiment ({', '.join(targets)})")
    for s in sources:
        members = joint_tasks(s)
        if members is not None:
            if len(members) < 2 or len(set(members)) != len(members):
                raise SuiteError(f"source {s!r}: a joint source names two or more different tasks, joint:A+B")
            for t in members:
                if is_seq2seq(registry.task(t)):
                    raise SuiteError(f"source {s!r}: {t} is a sequence-to-sequence task; the tasks of a joint source "
                                     "share one single-stack backbone")
            continue
        if s not in tasks and s.partition(":")[0] not in weight_sources:
            raise SuiteError(f"unknown source {s!r}: not a task and not a weight source "
                             f"(sources: {', '.join(weight_sources) or 'none'})")
    seq2seq = [t for t in targets if is_seq2seq(tasks[t])]
    exp = {**exp, "targets": targets, "sources": sources, "left_out": left_out, "seq2seq_targets": seq2seq,
           "seq2seq_preset": seq2seq_preset(exp, registry, seq2seq)}
    exp["notes"] = list(dict.fromkeys(note for t in targets for note in arms(exp, registry, t)[1]))
    return exp


def seq2seq_preset(exp: dict, registry, targets: list[str]) -> str | None:
    """The encoder-decoder preset of the sequence-to-sequence tasks: as set, or ``transformer-<preset>``
    where that is a preset; a one-line error if ``targets`` (the sequence-to-sequence targets) need one and there is none."""
    presets = registry.all_presets()
    known = ", ".join(name for name, cfg in presets.items() if cfg.get("n_encoder_layers")) or "none"
    given = exp.get("seq2seq_preset")
    if given is not None:
        if not presets.get(given, {}).get("n_encoder_layers"):
            raise SuiteError(f"seq2seq_preset: {given!r} is not an encoder-decoder preset; give one of {known}")
        return given
    counterpart = f"transformer-{exp['preset']}"
    if counterpart in presets:
        return counterpart
    if targets:
        raise SuiteError(f"seq2seq_preset: preset {exp['preset']!r} has no encoder-decoder counterpart {counterpart!r} for the "
                         f"sequence-to-sequence targets {', '.join(targets)}; set seq2seq_preset to one of {known}")
    return None


def run_overrides(exp: dict, task, steps: int, seed: int, evals: int | None = None, **extra) -> dict:
    """The dotted settings of one run of ``task`` in this experiment: the experiment's, the plugin's
    for this profile, the profile's for this task, then ``extra``."""
    evals = int(evals or exp.get("evals", 4))
    return {
        "backbone.preset": preset_of(exp, task), "backbone.positions": exp.get("positions", "learned"), "seed": seed,
        "trainer.max_steps": steps, "trainer.val_check_interval": max(1, steps // evals),
        "run.checkpoint_every": steps, **exp.get("overrides", {}),
        **config_mod.transfer_overrides(task, exp.get("profile", "")),
        **exp.get("task_overrides", {}).get(task.name, {}), **extra,
    }


def executor_of(exp: dict) -> tuple[str, str]:
    """(local or ray, why): ``auto`` is Ray when it is installed and the machine holds two runs or
    more at ``resources.cpus`` each (or the runs ask for GPUs), else one run after another."""
    import importlib.util
    import os

    if exp["executor"] != "auto":
        return exp["executor"], "as asked"
    if importlib.util.find_spec("ray") is None:
        return "local", "auto: Ray is not installed"
    res = exp["resources"]
    slots = int((os.cpu_count() or 1) // max(res["cpus"], 1e-9))
    if res["gpus"] > 0 or slots >= 2:
        return "ray", f"auto: Ray, {slots} runs at once at {res['cpus']:g} CPU each" if not res["gpus"] else "auto: Ray, runs ask for GPUs"
    return "local", f"auto: one run at a time fits {os.cpu_count()} cores"


def lrs_of(exp: dict, method: str) -> list[float]:
    return (exp.get("lrs_by_adapt") or {}).get(method) or exp["lrs"]


def size_budget(exp: dict, target: str, size: int | None, batch_size: int) -> int | None:
    """The steps of a run on ``size`` samples: ``size_steps`` epochs of them, at least its ``min``,
    at most the target's budget; None (the budget) without a size or a rule."""
    rule = exp.get("size_steps") or {}
    if size is None or not rule.get("epochs"):
        return None
    steps = -(-float(rule["epochs"]) * size // max(1, batch_size))
    return int(min(budget(exp, target), max(int(rule.get("min", 0)), exp.get("evals", 4), steps)))


def arms(exp: dict, registry, target: str) -> tuple[list[tuple], list[str]]:
    """The arms of one target of an expanded experiment, scratch first, each (source, method, arch,
    side); and a line on each arm the experiment names but the plan leaves out."""
    tasks = registry.all_tasks()
    if is_seq2seq(tasks[target]):
        return seq2seq_arms(exp, registry, target)
    archs, found, notes = [exp["preset"]], [], []
    for source in exp["sources"]:
        if source == target and exp.get("skip_self", True):
            continue
        if source in tasks and is_seq2seq(tasks[source]):
            notes.append(f"source {source}: a sequence-to-sequence task, an encoder-decoder: side arms of "
                         "sequence-to-sequence targets only (it does not load into a single stack)")
            continue
        arch = exp["preset"] if pretrained_here(source, tasks) else f"source:{source}"
        if arch not in archs:
            archs.append(arch)
        found += [(source, m, arch, None) for m in exp["adapt"]]
    return [(SCRATCH, "full", a, None) for a in archs] + [(SCRATCH, m, a, None) for a in archs[1:] for m in controls(exp)] + found, notes


def controls(exp: dict) -> list[str]:
    """The methods of the random controls: ``random_controls`` as listed, or (true) every method but
    full and those with an align stage (random init has no modality to align to)."""
    wanted = exp.get("random_controls")
    if isinstance(wanted, list):
        return wanted
    return [m for m in exp["adapt"] if m != "full" and not split(m)[0]] if wanted else []


def seq2seq_arms(exp: dict, registry, target: str) -> tuple[list[tuple], list[str]]:
    """A sequence-to-sequence target: scratch on the encoder-decoder preset and, for each source, a
    side arm per ``sides`` under adapt ``full`` (a frozen backbone would freeze the fresh side too)."""
    tasks = registry.all_tasks()
    preset = exp["seq2seq_preset"]
    found, notes = [(SCRATCH, "full", preset, None)], []
    others = [m for m in exp["adapt"] if m != "full"]
    if others:
        notes.append(f"adapt {', '.join(others)}: no side arms (sequence-to-sequence targets): freezing the backbone "
                     "would freeze the side that starts fresh and the cross-attention too; side arms train in full"
                     + ("" if "full" in exp["adapt"] else ", and adapt full is not in this experiment"))
    if "full" not in exp["adapt"]:
        return found, notes
    for source in exp["sources"]:
        if source == target and exp.get("skip_self", True):
            continue
        if not pretrained_here(source, tasks):
            why = misfit(exp, registry, target, source)
            if why:
                notes.append(f"{target} <- {source}: no side arms: {why}")
                continue
        found += [(source, "full", preset, side) for side in exp["sides"]]
    return found, notes


def misfit(exp: dict, registry, target: str, source: str) -> str | None:
    """Why a weight source's blocks do not fit a side of the target's encoder-decoder, or None."""
    from ..backbone import BackboneConfig
    from ..init_from import BLOCK_FIELDS

    theirs = source_backbone(source, registry)
    if isinstance(theirs, str):
        return theirs
    task = registry.task(target)
    ours = config_mod.resolve(task, overrides=run_overrides(exp, task, 1, 0), presets=registry.all_presets())["backbone"]
    theirs, ours = BackboneConfig.from_dict(theirs).to_dict(), BackboneConfig.from_dict(ours).to_dict()
    differ = [f"{k} {theirs[k]} != {ours[k]}" for k in BLOCK_FIELDS if theirs[k] != ours[k]]
    return f"its blocks do not fit {preset_of(exp, task)}'s ({'; '.join(differ)}, source != target)" if differ else None


def plan(exp: dict, registry) -> list[Cell]:
    """Every target run of an expanded experiment, target by target, size by size."""
    cells = []
    for target in exp["targets"]:
        found = arms(exp, registry, target)[0]
        sizes = sizes_of(exp, "train_sizes", target) or [None]
        batch = batch_size(exp, registry, target) if sizes != [None] and exp.get("size_steps") else 1
        more = sizes_of(exp, "scratch_sizes", target) if sizes != [None] else []
        for size in sorted({*sizes, *more}, key=lambda n: (n is None, n)):
            steps = size_budget(exp, target, size, batch)
            for source, method, arch, side in found:
                if size not in sizes and not (source == SCRATCH and method == "full"):
                    continue  # scratch_sizes: scratch's own curve against data
                for lr in lrs_of(exp, method):
                    for seed in exp["seeds"]:
                        cells.append(Cell(target, source, method, lr, seed, arch, size, steps, side))
    return cells


def batch_size(exp: dict, registry, target: str) -> int:
    task = registry.task(target)
    cfg = config_mod.resolve(task, overrides=run_overrides(exp, task, 1, 0), presets=registry.all_presets())
    return int(cfg["data"]["batch_size"])


def source_runs(exp: dict, cells: list[Cell], registry) -> list[SourceRun]:
    """The task-source pretraining runs the cells need, each once."""
    tasks = registry.all_tasks()
    needed = dict.fromkeys((c.source, c.seed) for c in cells if pretrained_here(c.source, tasks))
    return [source_run(exp, registry, task, seed) for task, seed in needed]


def source_run(exp: dict, registry, source: str, seed: int) -> SourceRun:
    """The pretraining of a task source, on the preset its task runs on."""
    task = registry.all_tasks().get(source)
    return SourceRun(source, seed, int(exp["source_steps"]), exp["preset"] if task is None else preset_of(exp, task))


def budget(exp: dict, target: str) -> int:
    """The fine-tuning steps of every arm of one target."""
    return int((exp.get("steps_by_target") or {}).get(target, exp["target_steps"]))


def steps_of(exp: dict, run) -> int:
    if isinstance(run, SourceRun):
        return run.steps * len(run.tasks)
    return run.steps or budget(exp, run.target)


def counts(exp: dict, runs: list) -> dict[str, dict]:
    """Runs and steps by kind: source pretraining, scratch, fine-tune per adaptation method."""
    out: dict[str, dict] = {}
    for r in runs:
        row = out.setdefault(r.label, {"runs": 0, "steps": 0})
        row["runs"] += 1
        row["steps"] += steps_of(exp, r)
    return out
