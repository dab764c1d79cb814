"""Experiment loggers: Lightning's own, chosen with ``--logger csv,tensorboard,wandb,mlflow``.

Every logger writes under the run directory's ``logs/`` unless the user points it elsewhere:

  csv          logs/metrics.csv (always available; the default)
  tensorboard  logs/events.out.tfevents.*  (``tensorboard --logdir runs``)
  wandb        logs/wandb/, offline unless WANDB_MODE=online (``wandb sync`` uploads it later);
               WANDB_PROJECT names the project (default ``suite``). Extra: ``pip install 'suite[wandb]'``
  mlflow       an MLflow file store in logs/mlruns (``mlflow ui --backend-store-uri``), or the
               store or server MLFLOW_TRACKING_URI names;
               the experiment is ``suite-<task>``. Extra: ``pip install 'suite[mlflow]'``

The resolved config is logged as the run's hyperparameters.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

from .errors import SuiteError

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
PACKAGE = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "suite[wandb]"),
           "mlflow": ("mlflow", "suite[mlflow]")}


def logger_names(spec) -> list[str]:
    """``"csv,tensorboard"`` (or a list) -> ``["csv", "tensorboard"]``; unknown names and missing
    packages are one-line errors."""
    if spec in (None, "", False, "none"):
        return []
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if str(n).strip()]
    for name in names:
        if name not in LOGGERS:
            hint = difflib.get_close_matches(str(name), LOGGERS, n=1)
            raise SuiteError(f"--logger {name}: not a logger; loggers: {', '.join(LOGGERS)}"
                             + (f" (did you mean {hint[0]}?)" if hint else ""))
        module, install = PACKAGE.get(name, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise SuiteError(f"--logger {name} needs the {module} package: pip install '{install}'")
    return list(dict.fromkeys(names))


def make_loggers(cfg: dict, run_dir: Path) -> list:
    """The Lightning loggers that ``run.logger`` names, writing under ``run_dir/logs``."""
    from pytorch_lightning import loggers

    logs = Path(run_dir) / "logs"
    out = []
    for name in logger_names(cfg["run"].get("logger", "csv")):
        if name == "csv":
            out.append(loggers.CSVLogger(str(run_dir), name="logs", version=""))
        elif name == "tensorboard":
            out.append(loggers.TensorBoardLogger(str(run_dir), name="logs", version="", default_hp_metric=False))
        elif name == "wandb":
            logs.mkdir(parents=True, exist_ok=True)
            out.append(loggers.WandbLogger(
                name=f"{cfg['task']}/{Path(run_dir).name}", save_dir=str(logs), project=os.environ.get("WANDB_PROJECT", "suite"),
                offline=os.environ.get("WANDB_MODE", "offline") != "online"))
        elif name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:  # a file store in the run directory, which MLflow 3 keeps only on request
                uri = (logs / "mlruns").resolve().as_uri()
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            out.append(loggers.MLFlowLogger(experiment_name=f"suite-{cfg['task']}", run_name=Path(run_dir).name,
                                            tracking_uri=uri))
    for logger in out:
        logger.log_hyperparams(cfg)
    return out
