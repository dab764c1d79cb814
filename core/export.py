"""`suite export RUN`: a trained run as a Hugging Face-style directory, or as ONNX.

``--format hf`` writes a directory that `suite predict`, `suite eval`, `suite play` and
`--init-from` accept like the run directory itself (runs.load_run reads it). Where the run's
backbone is exactly a transformers model (BERT, GPT-2, Llama, Qwen2: core/hf_export.py),
``transformers.AutoModel.from_pretrained(DIR)`` loads it too:

  config.json              that model's config (``model_type`` bert, gpt2, llama or qwen2), and under
                           ``suite`` the run's resolved config (enough to rebuild the whole model)
  model.safetensors        the backbone under the model's names (core/hf_names.py)
  suite_parts.safetensors  the task's adapter and head, keys prefixed ``adapter.``, ``head.``
  suite_tokenizer.json     the tokenizer's state (suite's own format, hence not tokenizer.json)
  metrics.json             the run's metrics, where it has them
  README.md                a model card: the Hub's metadata and model-index, task, data, settings,
                           metrics per split, how to load it

Any other backbone keeps suite's own layout, which exports of earlier versions have too:
``model_type: suite`` and every weight in model.safetensors, keys prefixed ``backbone.``,
``adapter.``, ``head.``; the model card says why no transformers model fits.

``--format onnx`` writes ``model.onnx``: the model without its tokenizer (adapter, backbone,
head), taking the tensors of a batch (``inputs`` and, where the task's batches have them,
``padding``, ``prefix_len`` and a task's own ``positions``) and returning the head's logits, with a dynamic batch size.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from . import adapt, hf_export, runs
from .errors import SuiteError

FORMATS = ("hf", "onnx")
MODEL_INPUTS = ("inputs", "padding", "prefix_len", "positions")  # the batch keys the adapter and backbone read


def export(run_dir: Path, fmt: str, out: Path, registry, task: str | None = None) -> list[str]:
    """Write the export of ``run_dir`` to ``out``; returns the names of the files written. ``task``:
    for a joint run, the task to export, as a single-task model with the joint backbone."""
    if fmt not in FORMATS:
        raise SuiteError(f"--format {fmt}: not an export format; formats: {', '.join(FORMATS)}")
    task, cfg, tokenizer, module = runs.load_run(run_dir, registry, task=task)
    module.eval()
    out = Path(out)
    if out.resolve() == Path(run_dir).resolve():
        raise SuiteError(f"--out {out}: the export must not overwrite the run directory")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        return export_hf(run_dir, task, cfg, tokenizer, module, out)
    return export_onnx(task, cfg, tokenizer, module, out)


# -- Hugging Face-style directory -------------------------------------------------------------------
def export_hf(run_dir: Path, task, cfg: dict, tokenizer, module, out: Path) -> list[str]:
    metrics = runs.read_metrics(run_dir, missing_ok=True)  # read before anything is written: a damaged one stops here
    if metrics is not None and "tasks" in metrics:
        metrics = member_metrics(metrics, task.name, run_dir)
    b, mask = cfg["backbone"], task.mask_for(cfg)
    parts = {part: {k: v.detach().cpu().contiguous() for k, v in getattr(module, part).state_dict().items()}
             for part in runs.PARTS}
    fam, why = hf_export.family(b)
    own = {f"{part}.{k}": v for part in ("adapter", "head") for k, v in parts[part].items()}
    if fam:
        words, pad = hf_export.word_table(module.adapter, b["d_model"])
        config = hf_export.hf_config(fam, b, mask, vocab_size=words.shape[0], pad=pad)
        files = {runs.EXPORT_WEIGHTS: hf_export.hf_state(fam, parts["backbone"], b, words), runs.EXPORT_PARTS: own}
    else:
        config = {"model_type": "suite", "architectures": ["SuiteModule"], "hidden_size": b["d_model"],
                  "num_hidden_layers": b["n_layers"], "num_attention_heads": b["n_heads"],
                  "intermediate_size": b["d_ff"], "max_position_embeddings": b["max_len"]}
        files = {runs.EXPORT_WEIGHTS: {**{f"backbone.{k}": v for k, v in parts["backbone"].items()}, **own}}
        (out / runs.EXPORT_PARTS).unlink(missing_ok=True)  # an earlier export's, into the same directory
    config.update({"task": task.name, "domain": task.domain, "suite": cfg})
    runs.write_text(out / runs.EXPORT_CONFIG, json.dumps(config, indent=2, default=str) + "\n")
    for name, state in files.items():
        with runs.atomic(out / name) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "task": task.name})
    runs.write_json(out / runs.EXPORT_TOKENIZER, tokenizer.state())
    written = [runs.EXPORT_CONFIG, *files, runs.EXPORT_TOKENIZER]
    if metrics is not None:
        runs.write_json(out / "metrics.json", metrics)
        written.append("metrics.json")
    n_params = sum(v.numel() for state in parts.values() for v in state.values())
    runs.write_text(out / "README.md", model_card(task, cfg, metrics, n_params, fam, why,
                                                  words=hf_export.plain_embedding(module.adapter)))
    return written + ["README.md"]


def member_metrics(metrics: dict, name: str, run_dir: Path) -> dict:
    """A joint run's metrics.json as one of its tasks' own: what an export of that task holds."""
    t = metrics["tasks"][name]
    history = [{"step": h["step"], **{k.partition("/")[2]: v for k, v in h.items() if k.startswith(f"{name}/")}}
               for h in metrics.get("history", [])]
    return {"task": name, "step": metrics["step"], "train_seconds": metrics.get("train_seconds"), "primary": t["primary"], "higher_is_better": t["higher_is_better"],
            "splits": t["splits"], "history": history, "init": metrics.get("init"),
            "best": (metrics.get("best") or {}).get(name),
            "joint": {"run": str(run_dir), "tasks": list(metrics["tasks"]), "steps": t.get("steps"), "mix": t.get("mix")}}


# The Hub's task type (model-index ``task.type``) of an objective, per domain where it depends on one
HUB_TASKS = {("Classification", "text"): "text-classification", ("Classification", "vision"): "image-classification",
             ("Classification", "audio"): "audio-classification", ("LanguageModel", None): "text-generation",
             ("Generation", None): "text2text-generation"}


def hub_task(task) -> str:
    name = task.objective.__name__
    return HUB_TASKS.get((name, task.domain), HUB_TASKS.get((name, None), "other"))


def dataset_name(task, cfg: dict) -> str:
    data = cfg.get("data") or {}
    for key in ("dataset", "corpus", "source"):
        if data.get(key):
            return ", ".join(map(str, data[key])) if isinstance(data[key], list) else str(data[key])
    return f"{task.name} data"


def card_metadata(task, cfg: dict, metrics: dict | None, fam: str | None) -> dict:
    """The card's YAML header as the Hub reads it: library, tags, and the metrics as ``model-index``."""
    meta = {"library_name": "transformers" if fam else "suite",
            "tags": list(dict.fromkeys(["suite", task.domain, task.name, *([fam] if fam else [])]))}
    if metrics and metrics.get("splits"):
        dataset = dataset_name(task, cfg)
        meta["model-index"] = [{"name": f"suite-{task.name}", "results": [
            {"task": {"type": hub_task(task), "name": task.name},
             "dataset": {"name": dataset, "type": dataset, "split": split},
             "metrics": [{"type": k, "value": float(v), "name": f"{split} {k}"}
                         for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]}
            for split, values in metrics["splits"].items()]}]
    return meta


def model_card(task, cfg: dict, metrics: dict | None, n_params: int, fam: str | None = None, why: str = "",
               words: bool = False) -> str:
    """README.md. ``fam``: the transformers model the backbone is (None: ``why`` none is); ``words``: the
    adapter's embedding table is that model's word embeddings."""
    b, t = cfg["backbone"], cfg["trainer"]
    mask = task.mask_for(cfg)
    lines = ["---", yaml.safe_dump(card_metadata(task, cfg, metrics, fam), sort_keys=False).rstrip(), "---", "",
             f"# suite: {task.name}", "",
             f"{task.description}. A `suite` model ({task.domain} domain, plugin `{task.plugin}`): the task's "
             f"tokenizer and adapter, the shared Transformer backbone and the task's head, "
             f"{n_params:,} parameters.", "",
             "## Task", "",
             f"- task: `{task.name}` (objective {task.objective.__name__}, {mask} attention)",
             f"- backbone: preset `{b.get('preset')}`, d_model {b['d_model']}, {b['n_layers']} layers, "
             f"{b['n_heads']} heads, d_ff {b['d_ff']}, context {b['max_len']}",
             (f"- transformers: the backbone is a `{hf_export.ARCHITECTURES[fam]}` (`model_type: {fam}`); "
              f"{hf_export.mask_note(fam, mask)}" if fam else
              f"- transformers: no transformers model has this backbone's blocks ({why}); the export keeps "
              "suite's own layout (`model_type: suite`)"),
             f"- started from: {cfg['init'].get('from') or 'scratch'} (adapt: {adapt.method_of(cfg)}{', LoRA merged into the weights' if adapt.split(adapt.method_of(cfg))[1] == 'lora' else ''})", "",
             "## Data", "", "```yaml", yaml.safe_dump({"data": cfg["data"]}, sort_keys=False).rstrip(), "```", "",
             "## Settings", "",
             f"- steps: {metrics['step'] if metrics else t.get('max_steps')}"
             + (f", training time {metrics['train_seconds']} s" if metrics else ""),
             f"- optimiser: AdamW, lr {cfg['optim']['lr']}, weight decay {cfg['optim']['weight_decay']}, "
             f"{cfg['optim']['schedule']} schedule, {cfg['optim']['warmup_steps']} warm-up steps",
             f"- batch size {cfg['data'].get('batch_size')}, precision {t.get('precision', '32-true')}, seed {cfg['seed']}",
             "- the full resolved config: `config.json`, section `suite`", "",
             "## Metrics", ""]
    if metrics and metrics.get("splits"):
        splits = metrics["splits"]
        primary = metrics.get("primary")
        names = sorted({k for m in splits.values() for k in m}, key=lambda k: (k != primary, k))
        lines += ["| split | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in names) + " |"
                  for s, m in splits.items()]
        lines += ["", f"Primary metric: `{primary}` ({'higher' if metrics.get('higher_is_better') else 'lower'} is better)."]
    else:
        lines.append("The run has no metrics.json (it did not finish).")
    lines += ["", "## How to load", "",
              f"With `suite` and the plugin that provides `{task.name}` installed:", "", "```bash",
              "suite predict THIS_DIR \"INPUT\"                       # one prediction",
              "suite eval THIS_DIR                                  # the metrics above, again",
              "suite train --task OTHER --init-from THIS_DIR        # reuse the backbone for another task",
              "```", "", "```python", "import suite",
              "task, cfg, tokenizer, model = suite.load_run(\"THIS_DIR\", suite.get_registry())",
              "model.eval()", "```", ""]
    if fam:
        lines += ["With `transformers` alone, the backbone:", "", "```python", "from transformers import AutoModel", "",
                  "backbone = AutoModel.from_pretrained(\"THIS_DIR\")",
                  "# x: the adapter's output (B, T, d_model); mask: 1 at tokens, 0 at padding",
                  "hidden = backbone(inputs_embeds=x, attention_mask=mask).last_hidden_state",
                  "```", "",
                  f"`model.safetensors` holds the backbone under `{hf_export.ARCHITECTURES[fam]}`'s names"
                  + (" and the task's embedding table as the word embeddings, so `input_ids` work too" if words else "")
                  + "; `suite_parts.safetensors` the task's adapter and head (keys prefixed `adapter.` and `head.`). "
                  "A task that numbers its tokens itself (a batch's `positions`) passes them as `position_ids`"
                  + ("; BERT's pooler (`pooler_output`) is not part of suite's backbone, so transformers starts it at random"
                     if fam == "bert" else "")
                  + ". Both files load without unpickling anything; `suite_tokenizer.json` is the tokenizer's state.", ""]
    else:
        lines += ["`model.safetensors` holds every tensor, keys prefixed `backbone.`, `adapter.` and `head.`; "
                  "it loads without unpickling anything. `suite_tokenizer.json` is the tokenizer's state.", ""]
    return "\n".join(lines)


# -- ONNX -------------------------------------------------------------------------------------------
class TensorModel(torch.nn.Module):
    """The model with positional tensor inputs (ONNX has no dicts): ``(inputs, [padding], [prefix_len], [positions])``."""

    def __init__(self, module, names: list[str]):
        super().__init__()
        self.module, self.names = module, list(names)

    def forward(self, *tensors):
        return self.module(dict(zip(self.names, tensors)))


def example_batch(task, tokenizer, cfg: dict, n: int = 2) -> dict[str, torch.Tensor]:
    """``n`` samples of the task's validation split, collated: the shapes and dtypes the model takes."""
    from .cache import prepare

    prepare(task, cfg)
    data = task.build_data(tokenizer, cfg)
    split = data["val"] if "val" in data else data["test"]
    if len(split) < n:
        raise SuiteError(f"task {task.name}: the validation split has {len(split)} samples; the export needs {n}")
    return task.collate([split[i] for i in range(n)])


def model_inputs(batch: dict) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in MODEL_INPUTS if isinstance(batch.get(k), torch.Tensor)}


def export_onnx(task, cfg: dict, tokenizer, module, out: Path) -> list[str]:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes with it)
        import onnxscript  # noqa: F401
    except ImportError:
        raise SuiteError("--format onnx needs the onnx and onnxscript packages: pip install 'suite[onnx]'") from None
    if module.backbone.encoder_decoder:
        raise SuiteError(f"task {task.name}: --format onnx exports one forward pass of a single-stack backbone; this run's "
                         f"is an encoder-decoder, read a token at a time ({runs.describe_backbone(cfg['backbone'])}); "
                         "export it with --format hf")
    inputs = model_inputs(example_batch(task, tokenizer, cfg))
    names = list(inputs)
    batch, length = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("length", min=2, max=cfg["backbone"]["max_len"])
    # token ids (B, T) and their padding: any batch size and length; patch vectors: any batch size
    # (their number is fixed by the adapter's grid)
    tokens = not inputs["inputs"].is_floating_point()
    # a task's own position numbers (B, >= T): their own length
    numbered = torch.export.Dim("numbered", min=2, max=4 * cfg["backbone"]["max_len"])
    dynamic = (tuple({0: batch, 1: length} if tokens and k in ("inputs", "padding") else
                     {0: batch, 1: numbered} if k == "positions" else {0: batch} for k in names),)
    path = out / "model.onnx"
    with warnings.catch_warnings():  # the exporter's deprecation notes are not the user's business
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(TensorModel(module, names).eval(), tuple(inputs.values()), str(path), input_names=names,
                              output_names=["logits"], dynamic_shapes=dynamic, dynamo=True, external_data=False,
                              verbose=False)
        except Exception as e:  # the exporter's errors are long; the first line says what failed
            raise SuiteError(f"task {task.name}: ONNX export failed: {str(e).strip().splitlines()[0]}") from None
    return ["model.onnx"]
