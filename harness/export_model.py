"""`export-model`: a finished run's model as a self-contained sentence-transformers folder with a model card.

The result JSON says which method ran, with which config, and where its model was saved
(`train_info.model_path`, else the runner's `runs/<task>/<baseline>/<model>__<hash>__<profile>__seed<seed>/`).
What is exported, per method:

* `frozen`: the base model as the run used it;
* `contrastive`, `heal` and any method that saved a sentence-transformers folder: that folder;
  a LoRA adapter in it (`lora`, `heal` with LoRA) is merged into the base weights (peft `merge_and_unload`),
  so the export no longer needs the base model's folder;
* `llm-frozen`, `llm-cl` with mean pooling: the causal LM's decoder (LoRA merged) as a sentence-transformers
  `Transformer` + mean `Pooling`, tokeniser padding on the right as the harness pads;
* `bm25` has no model, `lbr` embeds through trained bottleneck vectors under a custom attention mask and
  `last` pooling appends an EOS the harness adds itself: no sentence-transformers module reproduces those.

Every export ends with `Normalize` (the harness compares L2-normalised embeddings), carries the run's
`max_seq_length` and its query/document prefixes as the `query`/`document` prompts, and must hold no
absolute path: the files are checked before the folder is moved into place.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from harness import atomic
from harness.errors import HarnessError

ST_METHODS_WITHOUT_SAVED_MODEL = ("frozen",)
CAUSAL_LM_METHODS = ("llm-frozen", "llm-cl")
NOT_EXPORTABLE = {
    "bm25": "bm25 has no model to export",
    "lbr": ("lbr has no sentence-transformers equivalent: it embeds through k trained bottleneck vectors appended "
            "after each text under a custom attention mask (harness.methods.lbr_model.BottleneckLM); its LoRA adapter "
            "and bottleneck tensors stay in the run's adapter/ folder"),
}
CARD_SCORES = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100", "map_at_10", "precision_at_1")


def export_model(result_path: Path, dest: Path) -> Path:
    """Write `dest` from the run behind `result_path` (see the module docstring); `dest` must not exist yet."""
    result = _read_result(Path(result_path))
    method = result["run_info"]["method"]
    if method in NOT_EXPORTABLE:
        raise HarnessError(NOT_EXPORTABLE[method])
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise HarnessError(f"{dest} exists and is not empty: choose a new folder")
    model, source = _sentence_transformer(result)
    if dest.exists():
        dest.rmdir()
    with atomic.directory(dest) as scratch:
        model.save(str(scratch), create_model_card=False)
        (scratch / "README.md").write_text(model_card(result, model), encoding="utf-8")
        check_portable(scratch, [source, Path(result_path).resolve().parent, Path.home(), dest.resolve()])
    return dest


def _read_result(path: Path) -> dict:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        result["run_info"]["method"], result["run_info"]["key"]
    except FileNotFoundError:
        raise HarnessError(f"result file {path} not found") from None
    except (ValueError, KeyError, TypeError):
        raise HarnessError(f"{path} is not a harness result JSON (no run_info.method and run_info.key)") from None
    return result


def run_model_dir(result: dict, folder: str = "model") -> Path:
    """Where the run saved its model: as recorded, else where the runner puts it under today's runs dir."""
    from harness.paths import runs_dir

    recorded = result.get("train_info", {}).get("model_path" if folder == "model" else folder)
    key = result["run_info"]["key"]
    rebuilt = (runs_dir() / key["task"] / key["baseline"]
               / f"{key['model']}__{key['config_hash']}__{key['profile']}__seed{key['seed']}" / folder)
    for candidate in (Path(recorded) if recorded else None, rebuilt):
        if candidate is not None and candidate.is_dir():
            return candidate
    raise HarnessError(f"the run's saved {folder} is gone (looked at {recorded or '-'} and {rebuilt}); "
                       "rerun it with --overwrite, or set HARNESS_RUNS_DIR to the runs folder it was trained in")


def _sentence_transformer(result: dict):
    """(SentenceTransformer on cpu, the local folder it came from) for the run's method."""
    method, config = result["run_info"]["method"], result["run_info"].get("config", {})
    train_info = result.get("train_info", {})
    if method in CAUSAL_LM_METHODS:
        adapter = run_model_dir(result, "adapter") if method != "llm-frozen" else None
        return _causal_lm_sentence_transformer(config, adapter), adapter or Path(config.get("model", "."))
    if method in ST_METHODS_WITHOUT_SAVED_MODEL or not train_info.get("trained", True):
        from harness.models import resolve_model_path

        source = resolve_model_path(config["model"])
    elif "model_path" in train_info:
        source = run_model_dir(result)
    else:
        raise HarnessError(f"method {method!r} saved no sentence-transformers model (no train_info.model_path) "
                           "and has no exporter")
    model = _load_merged(source, config)
    return _as_run_encodes(model, config, config.get("max_seq_length")), source


def _load_merged(folder: Path, config: dict):
    """The sentence-transformers folder on cpu; an adapter in it is merged into its base weights."""
    from harness.encoders import load_sentence_transformer

    model = load_sentence_transformer(folder, "cpu")
    if (folder / "adapter_config.json").exists():
        from peft import PeftModel
        from transformers import AutoModel

        base = Path(json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"])
        if not base.is_dir():  # moved since training: the base the config names
            from harness.models import resolve_model_path

            base = resolve_model_path(config["model"])
        plain = AutoModel.from_pretrained(str(_transformer_dir(base)), local_files_only=True, use_safetensors=True)
        model[0].model = PeftModel.from_pretrained(plain, str(folder)).merge_and_unload().eval()
    return model


def _transformer_dir(st_folder: Path) -> Path:
    """The folder of the Transformer module inside a sentence-transformers folder (its root for most)."""
    modules = st_folder / "modules.json"
    if not modules.exists():
        return st_folder
    first = json.loads(modules.read_text())[0]
    return st_folder / first.get("path", "")


def _as_run_encodes(model, config: dict, max_seq_length: int | None):
    """Sequence length, prefixes as prompts, and a final Normalize, so `encode` gives the run's embeddings."""
    from sentence_transformers.sentence_transformer.modules import Normalize

    if max_seq_length:
        model.max_seq_length = max_seq_length
    prompts = {kind: config.get(f"{kind}_prefix", "") for kind in ("query", "document")}
    model.prompts = {kind: prefix for kind, prefix in prompts.items() if prefix}
    if not isinstance(model[len(model) - 1], Normalize):
        model.append(Normalize())
    return model.eval()


def _causal_lm_sentence_transformer(config: dict, adapter: Path | None):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.llm import causal_lm_dir

    if config.get("pooling", "mean") != "mean":
        raise HarnessError("only mean pooling exports: `last` pooling embeds an EOS token the harness appends itself, "
                           "which a sentence-transformers tokenizer does not add")
    folder = causal_lm_dir(config.get("model", "smollm2"))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = "right"  # positions count from the first token, as in the harness's right-padded batches
    with tempfile.TemporaryDirectory() as scratch:
        model.get_decoder().save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        transformer = Transformer(scratch, max_seq_length=config.get("max_document_length", 256))
        st = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")], device="cpu")
    return _as_run_encodes(st, config, None)


def _portable(value):
    """Config values with absolute paths cut to their last part: a card must not reveal or depend on them."""
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def model_card(result: dict, model) -> str:
    """README.md: what was trained on what, with which config, and how it scored."""
    run_info, key = result["run_info"], result["run_info"]["key"]
    split, blocks = next(iter(result["scores"].items()))
    scores = blocks[0]
    main = run_info.get("main_score", "ndcg_at_10")
    shown = [main] + [name for name in CARD_SCORES if name in scores and name != main]
    config = json.dumps(_portable(run_info.get("config", {})), indent=2, sort_keys=True)
    train = {k: v for k, v in result.get("train_info", {}).items() if isinstance(v, (int, float, str, bool))}
    packages = result.get("meta_info", {}).get("packages", {})
    synthetic = result.get("meta_info", {}).get("task", {}).get("synthetic")
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        f"tags: [sentence-transformers, harness, {run_info['method']}]",
        "---",
        "",
        f"# {key['task']} / {key['baseline']} (seed {key['seed']})",
        "",
        f"Exported from a run of the domain-embedding benchmark harness: method `{run_info['method']}`, "
        f"baseline `{key['baseline']}`, base model `{key['model']}`, config hash `{key['config_hash']}`, "
        f"task `{key['task']}` (profile `{key['profile']}`), seed {key['seed']}.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("PATH/TO/THIS/FOLDER")',
        "queries = model.encode_query([\"...\"])  # adds the query prompt, if the run used a query prefix",
        "documents = model.encode_document([\"...\"])",
        "scores = queries @ documents.T  # embeddings are L2-normalised: dot product = cosine",
        "```",
        "",
        f"Embedding dimension {model.get_embedding_dimension()}, max sequence length {model.max_seq_length} "
        f"tokens; prompts: {json.dumps(model.prompts) if model.prompts else 'none'}. Documents are encoded as "
        "`title + ' ' + text`, as the harness encodes them.",
        "",
        f"## Scores ({split} split, {run_info.get('n_queries', '?')} queries, {run_info.get('n_corpus', '?')} documents)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name}{' (main)' if name == main else ''} | {scores[name]:.4f} |" for name in shown],
        "",
    ]
    if synthetic:
        lines += [f"Trained on synthetic queries (splits {', '.join(synthetic.get('splits', []))}, "
                  f"generator `{synthetic.get('generator')}`).", ""]
    lines += ["## Config", "", "```json", config, "```", "", "## Training", "", "```json",
              json.dumps(_portable(train), indent=2, sort_keys=True), "```", "",
              "## Provenance", "",
              f"- created {run_info.get('created', '?')}, harness git commit `{run_info.get('git_commit')}`",
              *[f"- {name} {version}" for name, version in sorted(packages.items()) if version],
              f"- exported by `python -m harness export-model` with sentence-transformers {_version('sentence-transformers')}",
              ""]
    return "\n".join(lines)


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def check_portable(folder: Path, private: list[Path]) -> None:
    """Refuse an export whose text files name a local folder (they would not exist on another machine)."""
    needles = {str(p) for p in private if str(p) not in ("", ".", "/")} | {"site-packages"}
    needles |= {str(Path(p).resolve()) for p in private if str(p) not in ("", ".", "/")}
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.suffix in (".json", ".md", ".txt", ".py", ".toml", ".yaml", ""):
            found = pattern.search(file.read_text(encoding="utf-8", errors="replace"))
            if found:
                raise HarnessError(f"export would hold the local path {found.group(0)!r} in {file.name}; not written")
