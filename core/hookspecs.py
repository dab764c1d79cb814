"""The plugin contract. Each hook is documented where it is declared.

A plugin is a module (or any object) with functions marked ``@suite.hookimpl``. Built-in plugins and
pip-installed ones are found the same way: through the ``suite.plugins`` entry-point group::

    [project.entry-points."suite.plugins"]
    myplugin = "my_package.plugin"

Every hook receives a ``register`` callback and calls it once per thing it adds, as llm's
``register_models`` does. The host records which plugin registered what: a name two plugins
claim is unusable (and only it), with an error naming both; a hook that raises is skipped with
one warning line. docs/plugins.md describes the whole contract.
"""
import pluggy

PROJECT = "suite"
ENTRY_POINT_GROUP = "suite.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def suite_register_tasks(register):
    """Add tasks.

    Call ``register(task)`` for every :class:`suite.Task` instance the plugin provides. A task
    bundles a tokenizer, an adapter, a head, its data and an objective from ``suite.tasks``.
    Task names are global: a name two plugins register is unusable until one is disabled.
    """


@hookspec
def suite_register_weight_sources(register):
    """Add named sources of pretrained backbone weights.

    Call ``register(source)`` with a :class:`suite.WeightSource`. ``suite train --init-from NAME``
    (or ``NAME:ARGUMENT``, e.g. ``hf:/path/to/checkpoint``) asks that source for a backbone config
    and a state dict with the backbone's keys.
    """


@hookspec
def suite_register_presets(register):
    """Add backbone presets.

    Call ``register(name, config_dict)`` where ``config_dict`` holds :class:`suite.BackboneConfig`
    fields. The presets shipped in ``configs/backbone/`` are registered this way by the host.
    """


@hookspec
def suite_register_commands(register):
    """Add subcommands to the ``suite`` command line.

    Call ``register(name, help, configure, run)``: ``configure(parser)`` adds arguments to an
    ``argparse`` sub-parser, ``run(args)`` executes the command and returns an exit status
    (``None`` means 0). Raise :class:`suite.SuiteError` for a one-line user-facing error.
    """
