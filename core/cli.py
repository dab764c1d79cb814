"""The `suite` command line."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import config as config_mod
from .errors import SuiteError
from .freeze import FREEZE_MODES
from .loggers import logger_names
from .registry import DISABLE_ENV, DISABLE_PLUGINS_ENV, get_registry, warn

EPILOG = """examples:
  suite tasks
  suite train --task chess
  suite train --task arithmetic --trainer.max_steps 200 --backbone.preset small
  suite train --task vision --init-from runs/chess/20260101-120000 --freeze backbone
  suite train --task vision,audio,arithmetic --backbone.preset tiny
  suite train --task audio --init-from minilm --adapt fpt
  suite train --task vision --init-from minilm --adapt lora --adapt.lora_rank 4
  suite eval runs/arithmetic/20260101-120000
  suite predict runs/arithmetic/20260101-120000 "123+456"
  suite runs --task arithmetic
  suite export runs/arithmetic/20260101-120000 --format hf --out arithmetic-model
  suite transfer --sources chess,text,minilm --targets vision,audio
  suite new-plugin my-task
  suite transfer --profile full --dry-run
  suite transfer --profile full --executor ray --resources.gpus 0.25

Any setting of the resolved config (see --print-config) is overridden as --section.key VALUE.
Switch plugins off with --disable-plugin NAME (repeatable) or {plugins_env}=NAME,NAME;
set {env}=1 to load only the built-in plugins.""".format(env=DISABLE_ENV, plugins_env=DISABLE_PLUGINS_ENV)


def cmd_train(args, extra) -> int:
    from . import runs, train

    registry = get_registry()
    overrides = {}  # the options of `suite train` that are settings; --section.key VALUE are in `extra`
    if args.init_from is not None:
        overrides["init.from"] = args.init_from
    for side in ("encoder", "decoder"):
        if getattr(args, f"init_{side}_from") is not None:
            overrides[f"init.{side}_from"] = getattr(args, f"init_{side}_from")
    if args.freeze is not None:
        overrides["init.freeze"] = args.freeze
    if args.adapt is not None:
        overrides["adapt.method"] = args.adapt
    if args.threads is not None:
        overrides["run.threads"] = args.threads
    if args.compile:
        overrides["run.compile"] = True
    if args.logger is not None:
        overrides["run.logger"] = args.logger
    names = [n.strip() for n in (args.task or "").split(",") if n.strip()]
    saved = runs.read_config(Path(args.resume)) if args.resume else None
    if args.resume:
        runs.read_metrics(Path(args.resume), missing_ok=True)  # a damaged one: one line now, not a traceback after setup
    cfg = train.resolve_run(names, registry, config_file=args.config, overrides=overrides, args=extra, mix=args.mix,
                            saved=saved, resume=args.resume)
    logger_names(cfg["run"].get("logger"))  # an unknown logger or a missing package: an error before any work
    if args.print_config:
        if not args.resume:
            train.adopt_source_backbone(cfg, registry)  # a weight source brings its architecture: show it
        print(config_mod.dump(cfg), end="")
        return 0
    train.execute(train.Run.of(cfg, registry, resume=Path(args.resume) if args.resume else None, progress=not args.no_progress))
    return 0


def cmd_eval(args, extra) -> int:
    from . import train

    options = config_mod.parse_overrides(extra)
    bad = [k for k in options if not k.startswith("data.")]
    if bad:
        raise SuiteError(f"unexpected arguments: {', '.join('--' + k for k in bad)} (suite eval takes --data.KEY VALUE)")
    data = {k[len("data."):]: v for k, v in options.items()}
    train.evaluate_run(Path(args.run_dir), get_registry(), progress=not args.no_progress, data=data)
    return 0


def cmd_predict(args, extra) -> int:
    from . import train

    options = config_mod.parse_overrides(extra)
    if args.score:
        if args.input is not None or options:
            raise SuiteError("--score PAIRS takes no input and no options")
        for source, target, value in train.score_pairs(Path(args.run_dir), Path(args.score), get_registry(), task=args.task):
            print(f"{source}\t{target}\t{value:.6f}")
        return 0
    if args.input is None:
        raise SuiteError("give the input to answer, or --score PAIRS")
    print(train.predict(Path(args.run_dir), args.input, options, get_registry(), task=args.task))
    return 0


def cmd_export(args, extra) -> int:
    from .export import export

    if extra:
        raise SuiteError(f"unexpected arguments: {' '.join(extra)}")
    written = export(Path(args.run_dir), args.format, Path(args.out), get_registry(), task=args.task)
    print(f"wrote {args.out}/: {', '.join(written)}")
    return 0


def cmd_runs(args, extra) -> int:
    from .runs_table import table

    if extra:
        raise SuiteError(f"unexpected arguments: {' '.join(extra)}")
    print(table(Path(args.root), args.task))
    return 0


def reference_arg(text: str | None) -> dict | None:
    """--reference vision=runs/vision/NAME,chess=runs/chess/NAME -> {task: run directory}."""
    if not text:
        return None
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    bad = [task for task, eq, path in pairs if not eq or not task.strip() or not path.strip()]
    if bad or not pairs:
        raise SuiteError(f"--reference: give TASK=RUN_DIR[,TASK=RUN_DIR], not {text!r}")
    return {task.strip(): path.strip() for task, _, path in pairs}


def cmd_transfer(args, extra) -> int:
    from . import transfer

    if extra:
        raise SuiteError(f"unexpected arguments: {' '.join(extra)}")
    overrides = {"sources": args.sources, "targets": args.targets, "freeze": args.freeze, "adapt": args.adapt, "seeds": args.seeds,
                 "lrs": args.lrs, "preset": args.preset, "target_steps": args.target_steps,
                 "source_steps": args.source_steps, "evals": args.evals, "out": args.out, "executor": args.executor,
                 "resources.cpus": args.resources_cpus, "resources.gpus": args.resources_gpus,
                 "ray_address": args.ray_address, "measure": args.measure, "bootstrap": args.bootstrap,
                 "train_sizes": args.train_sizes, "scratch_sizes": args.scratch_sizes, "reference": reference_arg(args.reference),
                 "sides": args.sides, "seq2seq_preset": args.seq2seq_preset}
    exp = transfer.load_experiment(args.profile, args.config, overrides)
    calibrate_steps = str(args.calibrate_steps)
    if not calibrate_steps.isdigit():
        raise SuiteError(f"--calibrate-steps must be 0 (no estimate) or a positive integer, not {calibrate_steps!r}")
    if args.recalibrate:
        warn("--recalibrate is deprecated: use --calibrate")
    if args.calibrate and not args.dry_run:
        raise SuiteError("--calibrate measures for the estimate of --dry-run: give both")
    # this dry run's command with --calibrate (the output directory does not change a calibration)
    given = [f"--{key.replace('_', '-')} {shlex.quote(str(value))}" for key, value in overrides.items()
             if value is not None and key != "out"]
    given += [] if args.config is None else [f"--config {shlex.quote(args.config)}"]
    given += [] if calibrate_steps == "20" else [f"--calibrate-steps {calibrate_steps}"]
    command = " ".join(["suite transfer --profile", shlex.quote(args.profile), *given, "--dry-run --calibrate"])
    out = transfer.default_out(exp)
    transfer.run_experiment(exp, get_registry(), out, progress=not args.no_progress, dry=args.dry_run,
                            calibrate_steps=int(calibrate_steps), recalibrate=args.calibrate or args.recalibrate,
                            calibrate_command=command)
    if not args.dry_run:
        print(f"report: {out / 'report.md'}  (also results.json, heatmap.png, curves.png)")
    return 0


def cmd_plugins(args, extra) -> int:
    registry = get_registry()
    registry.all_tasks()
    for info in registry.plugins.values():
        dist = f"{info.distribution} {info.version}".strip() or "(registered directly)"
        print(f"{info.name}  [{dist}]")
        if info.disabled:
            print(f"    disabled ({info.disabled})")
        if info.error:
            print(f"    FAILED TO LOAD: {info.error}")
        for hook, error in info.hook_errors.items():
            print(f"    {hook} FAILED: {error}")
        for label, kind, items in (("tasks", "task", info.tasks), ("weight sources", "weight source", info.weight_sources),
                                   ("backbone presets", "preset", info.presets), ("commands", "command", info.commands)):
            if items:
                marked = [f"{n} (UNUSABLE: also registered by another plugin)" if (kind, n) in registry.conflicts else n
                          for n in items]
                print(f"    {label}: {', '.join(marked)}")
    if registry.conflicts:
        print("conflicts:")
        for kind, name in registry.conflicts:
            print(f"    {registry.conflict_message(kind, name)}")
    return 0


def cmd_new_plugin(args, extra) -> int:
    from .newplugin import new_plugin

    if extra:
        raise SuiteError(f"unexpected arguments: {' '.join(extra)}")
    out, written = new_plugin(args.name, args.dir, get_registry())
    print(f"wrote {out}/: {', '.join(written)}")
    print(f"next: pip install -e {out}; then `suite tasks` lists {args.name}, `suite train --task {args.name}` "
          f"trains it and `pytest {out}` runs its tests")
    return 0


def cmd_tasks(args, extra) -> int:
    tasks = get_registry().all_tasks()
    width = max((len(n) for n in tasks), default=4)
    for name, task in tasks.items():
        print(f"{name:<{width}}  {task.domain:<10}  {task.description}   [{task.plugin}]")
    return 0


def build_parser(registry, train_help: str = "") -> argparse.ArgumentParser:
    """The command line; ``train_help``: the settings `suite train [--task T] --help` lists
    (config.settings_help, made only when that help is asked for: it imports Lightning)."""
    parser = argparse.ArgumentParser(
        prog="suite", description="One Transformer backbone, many domains.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--disable-plugin", metavar="NAME", action="append",
                        help="switch off a plugin by the name `suite plugins` lists (repeatable; also NAME,NAME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a task; writes a run directory",
                       description="Train a task. Unlisted options --section.key VALUE override the config.",
                       epilog=train_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="task name (see `suite tasks`); several, A,B,C: one backbone trained on all of them")
    p.add_argument("--mix", metavar="MIX",
                   help="a joint run's task per step: uniform (default), size or size:T (by training-set size ** (1/T)), "
                        "or one weight per task, 2,1,1")
    p.add_argument("--config", help="a YAML file merged over the task's defaults")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--init-from", metavar="RUN_DIR|SOURCE", help="start the backbone from a run, an export (suite export) or a weight source")
    p.add_argument("--init-encoder-from", metavar="RUN_DIR|SOURCE",
                   help="an encoder-decoder: start the encoder (and the source adapter) from a run, an export or a weight source")
    p.add_argument("--init-decoder-from", metavar="RUN_DIR|SOURCE",
                   help="an encoder-decoder: start the decoder (and the target adapter) from a run, an export or a weight source; "
                        "its cross-attention starts fresh")
    p.add_argument("--adapt", metavar="METHOD",
                   help="how the backbone adapts after --init-from: full (default), frozen, fpt, lora, bitfit, orca "
                        "(align, then full) or orca+METHOD; settings --adapt.lora_rank, --adapt.orca_steps, ...")
    p.add_argument("--freeze", choices=FREEZE_MODES, help="the older name of --adapt: none, backbone, fpt are full, frozen, fpt")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads per process (default: the cores this process may use / processes per machine)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone (pays off on a GPU)")
    p.add_argument("--logger", metavar="NAMES",
                   help="experiment loggers, comma-separated: csv (default), tensorboard, wandb (offline), mlflow "
                        "(file store); they write to the run's logs/")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="re-evaluate a run on its validation and test splits, or on data of your own",
                       description="Evaluate a trained run on its validation and test splits; with --data.KEY VALUE "
                                   "settings of the run's task (for example --data.pairs FILE), on the data they make.")
    p.add_argument("run_dir")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="answer one input with a trained run",
                       description="Answer one input. Task options are given as --key VALUE.")
    p.add_argument("run_dir")
    p.add_argument("input", nargs="?", help="the raw input: a problem, a FEN, a file path, a prompt, a sentence (task dependent)")
    p.add_argument("--score", metavar="PAIRS", help="a sequence-to-sequence run: print log p(output | input) beside each "
                                                   "input<TAB>output line of the TSV file PAIRS")
    p.add_argument("--task", help="the task that answers, for a joint run (suite train --task A,B)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a run: a Hugging Face-style directory with a model card, or ONNX",
                       description="--format hf: config.json, model.safetensors, the tokenizer state and a README.md "
                                   "model card; `suite predict`, `suite eval` and --init-from accept the directory. "
                                   "--format onnx: model.onnx, the model without its tokenizer (adapter, backbone, "
                                   "head), dynamic batch size.")
    p.add_argument("run_dir", help="a run directory")
    p.add_argument("--format", default="hf", choices=("hf", "onnx"), help="hf (default) or onnx")
    p.add_argument("--out", required=True, help="the directory to write")
    p.add_argument("--task", help="the task to export, for a joint run (suite train --task A,B): a single-task model "
                                   "with the joint backbone")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("runs", help="list the runs of a directory: task, date, steps, time, key metrics; newest first",
                       description="List run directories (ROOT/TASK/NAME) with their steps, training time and "
                                   "primary metric on the validation and test splits, newest first.")
    p.add_argument("--root", default="runs", help="where the runs are (default: runs, as --run.root)")
    p.add_argument("--task", help="only the runs of this task")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("transfer", help="pretrain on A, fine-tune on B, against scratch: the source x target matrix",
                       description="Run the transfer matrix and write results.json, report.md, heatmap.png and "
                                   "curves.png. Re-running the same command resumes it, skipping finished runs. "
                                   "Profiles: quick (CPU, under 20 min), medium (CPU, about an hour), pretrained (MiniLM "
                                   "against scratch at 100 and 400 target samples; CPU, under 2 hours), methods (MiniLM adapted by full, "
                                   "FPT, LoRA, BitFit and ORCA; CPU), pretrained-gpu, methods-gpu and full (GPUs).")
    p.add_argument("--profile", default="quick",
                   help="a profile in configs/transfer/: quick (default), medium, pretrained, methods, pretrained-gpu, "
                        "methods-gpu, full")
    p.add_argument("--config", help="an experiment YAML merged over the profile")
    p.add_argument("--sources", help="comma-separated tasks and weight sources, or 'all'")
    p.add_argument("--targets", help="comma-separated tasks, or 'all'")
    p.add_argument("--adapt", help="comma-separated adaptation methods, the arms of each source: full, frozen, fpt, lora, "
                                   "bitfit, orca, orca+METHOD")
    p.add_argument("--freeze", help="the older name of --adapt: comma-separated none, backbone, fpt (full, frozen, fpt)")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--lrs", help="comma-separated learning rates swept for every arm")
    p.add_argument("--preset", help="backbone preset of every task arm")
    p.add_argument("--seq2seq-preset", help="encoder-decoder preset of the sequence-to-sequence tasks (default transformer-<preset>)")
    p.add_argument("--sides", help="sequence-to-sequence targets: comma-separated sides each source starts: encoder, decoder, "
                                   "both (default encoder)")
    p.add_argument("--target-steps", help="fine-tuning steps of every arm")
    p.add_argument("--source-steps", help="pretraining steps of every task source")
    p.add_argument("--evals", help="validation checks per target run (the points of each curve)")
    p.add_argument("--train-sizes", metavar="N,N",
                   help="target training-set sizes: every arm at each (data.train_limit); effective data in target samples")
    p.add_argument("--scratch-sizes", metavar="N,N", help="more sizes for the scratch arms alone (scratch's score against data)")
    p.add_argument("--reference", metavar="TASK=RUN_DIR",
                   help="each task's default `suite train` run, read for the report's share-of-reference lines")
    p.add_argument("--out", help="output directory (default from the profile)")
    p.add_argument("--dry-run", action="store_true",
                   help="list every run, count them by kind, and estimate the wall time from stored calibrations; "
                        "trains nothing but, with --calibrate, the calibration's short runs")
    p.add_argument("--calibrate", action="store_true",
                   help="with --dry-run: measure each (task, architecture) afresh with short runs and keep the "
                        "measurements in the user's cache for later dry runs")
    p.add_argument("--calibrate-steps", default="20", metavar="K",
                   help="--calibrate measures with runs of K and 3K steps (0: no estimate; default 20)")
    p.add_argument("--recalibrate", action="store_true", help="deprecated: --calibrate")
    p.add_argument("--executor", help="auto (default: Ray when installed and the machine holds two runs at "
                                      "--resources.cpus each, else local), local (one run after another) or ray (needs suite[ray])")
    p.add_argument("--resources.cpus", dest="resources_cpus", metavar="N", help="CPUs per run on Ray (default 1)")
    p.add_argument("--resources.gpus", dest="resources_gpus", metavar="N",
                   help="GPUs per run on Ray; 0.25 packs four runs on one GPU (default 0)")
    p.add_argument("--ray-address", metavar="ADDRESS", help="join a running Ray cluster ('auto'); default: start a local Ray")
    p.add_argument("--measure", help="what heatmap.png shows: gain (default), effective-data or auc")
    p.add_argument("--bootstrap", metavar="N", help="add percentile bootstrap intervals with N resamples")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_transfer)

    sub.add_parser("plugins", help="list plugins and what they add").set_defaults(func=cmd_plugins)
    sub.add_parser("tasks", help="list tasks").set_defaults(func=cmd_tasks)

    p = sub.add_parser("new-plugin", help="write a new plugin package: one working task, its settings, README and tests",
                       description="Write a plugin package that `pip install -e DIR` makes visible in `suite tasks`, "
                                   "that `suite train --task NAME` trains, and whose tests pass as written.")
    p.add_argument("name", help="the plugin's and its task's name, such as my-task")
    p.add_argument("--dir", help="where to write it (default: ./suite-NAME)")
    p.set_defaults(func=cmd_new_plugin)

    for name, command in registry.all_commands().items():
        if name in sub.choices:
            warn(f"plugin {command.plugin!r} adds a command {name!r}, which suite has already; it is skipped")
            continue
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(func=_plugin_command(command.run))
    return parser


def _plugin_command(run):
    def call(args, extra):
        if extra:
            raise SuiteError(f"unexpected arguments: {' '.join(extra)}")
        return run(args)
    return call


def split_global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``--disable-plugin NAME`` may stand anywhere on the command line: it is taken out before
    the plugins load (their commands shape the parser). Returns (plugin names, the rest)."""
    pre = argparse.ArgumentParser(prog="suite", add_help=False, allow_abbrev=False)
    pre.add_argument("--disable-plugin", action="append", default=[])
    known, rest = pre.parse_known_args(argv)
    return [n.strip() for names in known.disable_plugin for n in names.split(",") if n.strip()], rest


def train_help(argv: list[str], registry) -> str:
    """For `suite train [--task T] --help`: the settings it lists (T's included); "" otherwise."""
    if not argv or argv[0] != "train" or not {"-h", "--help"} & set(argv):
        return ""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    name = pre.parse_known_args(argv[1:])[0].task
    name = (name or "").split(",")[0].strip()  # a joint run (A,B): the first task's settings; --B.section.key sets B's
    return config_mod.settings_help(registry.task(name) if name else None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        disabled, argv = split_global_options(argv)
        registry = get_registry(disabled)
        unknown = [n for n in disabled if n not in registry.known]
        if unknown:
            raise SuiteError(f"--disable-plugin {unknown[0]}: no plugin of that name; plugins: "
                             f"{', '.join(sorted(registry.known))} (see `suite plugins`)")
        parser = build_parser(registry, train_help(argv, registry))
        args, extra = parser.parse_known_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args, extra) or 0)
    except SuiteError as e:
        print(f"suite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("suite: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
