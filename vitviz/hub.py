"""Export a vitviz checkpoint in the Hugging Face Hub layout that timm reads.

``export_hub(checkpoint, out_dir)`` writes three files:

- ``config.json``: timm's own hub config (written by ``timm.models._hub.save_config_for_hf``):
  ``architecture`` (the variant), ``num_classes``, ``label_names``, ``model_args`` (the checkpoint's
  constructor arguments, e.g. ``embed="conv"``) and ``pretrained_cfg`` (input size, mean/std of the
  training data, crop, interpolation, classifier, first conv, papers, licence); a ``vitviz`` entry
  keeps the provenance (dataset, test accuracy, parent, source checkpoint hash).
- ``model.safetensors``: the checkpoint's tensors unchanged (same dtype, same header metadata).
- ``README.md``: a model card with the metrics, the per-class accuracy table, the training recipe
  and the paper references.

The folder loads with timm alone once vitviz is imported (which registers the architectures):
``timm.create_model("local-dir:DIR", pretrained=True)``, or after an upload with
``huggingface_hub.upload_folder(repo_id=..., folder_path=DIR)``: ``timm.create_model("hf-hub:USER/REPO",
pretrained=True)``. Uploading stays the user's step.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import safetensors
import safetensors.torch
from timm.models._hub import save_config_for_hf

from . import checkpoints
from .catalog import CATALOG
from .models._common import PAPERS, VITVIZ_LICENSE

__all__ = ["export_hub", "model_card"]

HUB_FILES = ("config.json", "model.safetensors", "README.md")
_PAPER_NAMES = dict(PAPERS.values())
# training settings worth a row in the card's recipe table (the rest stays in the checkpoint JSON)
_RECIPE_KEYS = ("epochs", "steps_done", "batch_size", "lr", "min_lr", "weight_decay", "warmup_epochs",
                "label_smoothing", "crop_padding", "flip", "grad_clip", "seed", "amp", "trainable", "device",
                "seconds")


def export_hub(checkpoint: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write config.json, model.safetensors and README.md for ``checkpoint`` into ``out_dir``.

    The checkpoint is loaded (hash- and shape-checked) by ``vitviz.checkpoints.load`` first. Returns
    the written paths by file name. Raises ``CheckpointError`` for a bad checkpoint.
    """
    model, meta = checkpoints.load(checkpoint, device="cpu")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    weights_path = Path(meta["path"])
    with safetensors.safe_open(str(weights_path), framework="pt") as f:
        header = f.metadata() or {}
    tensors = safetensors.torch.load_file(str(weights_path))
    paths = {name: out / name for name in HUB_FILES}
    _write(paths["model.safetensors"], safetensors.torch.save(tensors, metadata=header))

    provenance = dict(dataset=meta["dataset"], test_accuracy=meta["metrics"].get("test_accuracy"),
                      parent=meta["parent"], checkpoint=weights_path.name, weights_sha256=meta["weights_sha256"],
                      created=meta["created"], versions=meta["versions"])
    tmp = paths["config.json"].with_name(".config.json.tmp")
    save_config_for_hf(model, str(tmp), model_config=dict(label_names=list(meta["classes"]), vitviz=provenance),
                       model_args=dict(meta["variant_kwargs"]))
    os.replace(tmp, paths["config.json"])
    config = json.loads(paths["config.json"].read_text())
    _write(paths["README.md"], model_card(meta, config, out.name).encode("utf-8"))
    return paths


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) else "n/a"


def model_card(meta: dict, config: dict, repo_name: str) -> str:
    """The README.md model card for a checkpoint's metadata and its exported timm config."""
    variant, cfg = meta["variant"], config["pretrained_cfg"]
    info = CATALOG.get(variant)
    metrics, recipe = meta["metrics"], meta["train_config"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in meta["variant_kwargs"].items())
    paper_ids = cfg.get("paper_ids") or ()
    paper_ids = [paper_ids] if isinstance(paper_ids, str) else list(paper_ids)
    front = ["---", "tags:", "- image-classification", "- timm", "- vitviz", "library_name: timm",
             f"license: {cfg.get('license', VITVIZ_LICENSE)}", "datasets:", f"- {meta['dataset']}",
             "metrics:", "- accuracy", "---"]
    parts = ["\n".join(front), f"# {repo_name}",
             f"`{variant}`{f' ({kwargs})' if kwargs else ''} trained by vitviz on {meta['dataset']}"
             f" ({len(meta['classes'])} classes)."
             + (f" {info.family}: {info.differs}; baseline: {info.baseline}." if info else "")]

    details = [f"- **Architecture:** `{variant}`, constructor arguments: {kwargs or 'defaults'}",
               f"- **Parameters:** {meta['param_count']:,}",
               f"- **Input:** {cfg['input_size'][1]} x {cfg['input_size'][2]} RGB, mean {list(cfg['mean'])},"
               f" std {list(cfg['std'])}, interpolation {cfg.get('interpolation')}, crop {cfg.get('crop_pct')}",
               f"- **Weights:** {meta['weights_dtype']}, from `{Path(meta['path']).name}`"
               f" (sha256 {meta['weights_sha256'][:12]}...)",
               f"- **Parent checkpoint:** {meta['parent'] or 'none (trained from scratch)'}"]
    if info and info.choices_ours:
        details.append(f"- **Choices of ours (not fixed by the papers):** {info.choices_ours}")
    parts += ["## Model details", "\n".join(details)]

    parts += ["## Usage", "\n".join([
        "```python",
        "import timm",
        "import vitviz  # registers the vitviz architectures with timm",
        "",
        f'model = timm.create_model("hf-hub:USER/{repo_name}", pretrained=True).eval()',
        f'# or from the folder on disk: timm.create_model("local-dir:path/to/{repo_name}", pretrained=True)',
        "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
        "```"])]

    n_test = metrics.get("num_test_samples")
    parts += ["## Metrics", _table(("metric", "value"), [
        ("test accuracy", _pct(metrics.get("test_accuracy"))),
        ("test samples", n_test if n_test is not None else "n/a"),
        ("dataset", meta["dataset"])])]
    per_class = metrics.get("per_class_accuracy") or {}
    if per_class:
        confusion = metrics.get("confusion_matrix")
        support = [sum(row) for row in confusion] if confusion else [None] * len(meta["classes"])
        rows = [(name, _pct(per_class.get(name)), support[i] if support[i] is not None else "n/a")
                for i, name in enumerate(meta["classes"])]
        parts += ["## Per-class accuracy", _table(("class", "accuracy", "test samples"), rows)]

    recipe_rows = [(k, recipe[k]) for k in _RECIPE_KEYS if recipe.get(k) is not None]
    parts += ["## Training recipe", "AdamW with warmup and cosine decay (vitviz's training engine)."
              + (f" Note: {recipe['extra']['note']}" if (recipe.get("extra") or {}).get("note") else ""),
              _table(("setting", "value"), recipe_rows) if recipe_rows else "No recipe recorded."]
    if recipe.get("command"):
        parts.append(f"Command:\n\n```bash\n{recipe['command']}\n```")

    refs = [f"- {_PAPER_NAMES.get(pid, pid)}: https://arxiv.org/abs/{pid.removeprefix('arXiv:')}"
            if pid.startswith("arXiv:") else f"- {pid}" for pid in paper_ids]
    parts += ["## References", "\n".join(refs) if refs else "none recorded",
              f"\nLicence: {cfg.get('license', VITVIZ_LICENSE)}."]
    return "\n\n".join(parts) + "\n"
