"""``suite new-plugin NAME``: write a plugin package that installs, trains and passes its own tests.

The package is made from the templates in plugin_template/ (``string.Template``, ``${name}``
placeholders): a pyproject with the entry point, one working task (a ``suite.ClassificationTask``)
with its settings file, a README and tests written with ``suite.testing``.
"""
from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from .errors import SuiteError

# template -> where it goes in the new package
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "plugin.py.tmpl": "{module}/__init__.py",
    "task.yaml.tmpl": "{module}/{name}.yaml",
    "test_plugin.py.tmpl": "tests/test_{module}.py",
}
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def names(name: str) -> dict[str, str]:
    """``my-task`` -> the task and plugin name, distribution, module and class names."""
    return {"name": name, "dist": f"suite-{name}", "module": "suite_" + name.replace("-", "_"),
            "cls": "".join(part.capitalize() for part in name.split("-")) + "Task"}


def new_plugin(name: str, directory: str | None, registry) -> tuple[Path, list[str]]:
    """Write the package for task ``name`` into ``directory`` (default ``suite-NAME``); returns
    the directory and the files written, relative to it."""
    if not NAME.fullmatch(name):
        raise SuiteError(f"{name!r} is not a usable plugin name: use lower-case letters, digits and "
                         f"single hyphens, starting with a letter (such as my-task)")
    if name in registry.all_tasks() or name in registry.known:
        raise SuiteError(f"{name!r} is already a task or plugin name (see `suite tasks`, `suite plugins`); choose another")
    values = names(name)
    out = Path(directory or values["dist"])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SuiteError(f"{out}: exists and is not an empty directory; give another --dir")
    written = []
    for template, target in FILES.items():
        text = resources.files("suite").joinpath("plugin_template", template).read_text()
        path = out / target.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(text).substitute(values))
        written.append(str(path.relative_to(out)))
    return out, written
