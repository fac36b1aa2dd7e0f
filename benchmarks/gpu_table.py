"""The GPU check's two Python steps (`scripts/gpu_check.sh`): budget configs in, a BENCHMARKS.md table out.

    python benchmarks/gpu_table.py configs DEST --steps 300 [--dry-run --model DIR --llm DIR]
    python benchmarks/gpu_table.py table RESULTS [--require-cuda] [--peak-tflops 989]

`configs` writes the check's baselines (frozen, contrastive-gpu, lora-gpu, heal-gpu, lbr-gpu) into DEST,
each resolved into one flat file (an `extends` chain written out), with every step budget the method has
(`max_steps`, `stage1_steps`) cut to --steps and dev evaluation at its end only; --dry-run also shrinks
batches and lengths for the tiny test model and task.

`table` reads every result JSON under RESULTS and prints one Markdown row per run. Throughput counts
padded tokens, an upper bound on the tokens the model saw (texts shorter than the cap are padded only
to the longest in their batch):

    tokens      = optimiser steps x texts per step x token cap per text (per stage for lbr)
    tokens/s    = tokens / training seconds (seconds_per_step x steps: dev evaluation left out)
    model FLOP/s = 6 x parameters x tokens / training seconds (forward 2N, backward 4N per token; LoRA
                   skips most weight gradients, so its true count is nearer 4N)
    MFU         = model FLOP/s / the GPU's dense bf16 peak (H200 and H100 SXM: 989 TFLOP/s)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_BASELINES = ("frozen", "contrastive-gpu", "lora-gpu", "heal-gpu", "lbr-gpu")
STEP_FIELDS = ("max_steps", "stage1_steps")
# The tiny model and task of the dry run: small batches, and lengths inside the tiny Llama's 256 positions.
DRY_RUN_FIELDS = {"train_batch_size": 8, "stage1_batch_size": 4, "batch_size": 8, "encode_batch_size": 16,
                  "max_seq_length": 48, "max_text_length": 24, "max_target_length": 12, "max_query_length": 16,
                  "max_document_length": 24, "refine_corpus_batch_size": 2, "lora_rank": 4, "precision": "fp32",
                  "label_source": "gold", "members_per_leaf": 3}  # HNMFK needs more than 18 documents to split
KNOWN_PARAMETERS = {"minilm": 22_713_216, "smollm2": 134_515_008}  # all-MiniLM-L6-v2, SmolLM2-135M


def _toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + " }" if value else "{}"
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)  # strings, numbers, booleans and their arrays are spelt alike in JSON and TOML


def resolved_toml(baseline, values: dict, header: str) -> str:
    """`baseline` as one flat TOML file: its resolved config (any `extends` chain written out, so the file
    stands alone in another folder) with `values` set, each set line marked `# gpu_check`."""
    lines = [header, f"# {baseline.name} resolved by benchmarks/gpu_table.py; lines ending in `# gpu_check` differ from it",
             f"method = {_toml_value(baseline.method)}"]
    if baseline.resources:
        lines.append(f"resources = {_toml_value(baseline.resources)}")
    for key, value in baseline.config_dict.items():
        if key in values:
            lines.append(f"{key} = {_toml_value(values[key])}  # gpu_check")
        elif value is not None:  # TOML has no null: the field keeps its default
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_configs(destination: Path, steps: int, dry_run: bool = False, model: str | None = None,
                  llm: str | None = None, source: Path = ROOT / "baselines") -> list[Path]:
    """The check's baseline configs with its budgets; only fields the method has are set."""
    from harness.baselines import load_baseline

    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CHECK_BASELINES:
        baseline = load_baseline(name, source)
        fields = {f.name for f in dataclasses.fields(baseline.config)}
        values = {key: steps for key in STEP_FIELDS if key in fields}
        if "eval_steps" in fields and values:
            values["eval_steps"] = steps  # dev selection once, at the end: the check times training
        if dry_run:
            values |= {key: value for key, value in DRY_RUN_FIELDS.items() if key in fields}
            spec = llm if baseline.method == "lbr" else model
            if spec and "model" in fields:
                values["model"] = spec
        text = (source / f"{name}.toml").read_text(encoding="utf-8")
        header = "\n".join(line for line in text.splitlines() if line.startswith("#")) or f"# {name}"
        path = destination / f"{name}.toml"
        path.write_text(resolved_toml(baseline, values, header), encoding="utf-8")
        written.append(path)
    return written


def _stages(method: str, config: dict, train: dict) -> list[tuple[int, float, int]]:
    """(steps, training seconds, padded tokens per step) of each training stage of one run."""
    batch = config.get("train_batch_size", config.get("batch_size", 0))
    steps = train.get("steps", 0)
    seconds = train.get("seconds_per_step", 0) * steps
    if method == "heal":  # a row is one text (document or query)
        stages = [(steps, seconds, batch * config.get("max_seq_length", 0))]
    elif method in ("contrastive", "lora"):  # a pair (and its hard negatives) is 2+ texts
        stages = [(steps, seconds, batch * (2 + config.get("hard_negatives", 0)) * config.get("max_seq_length", 0))]
    elif "max_document_length" in config:  # causal-LM methods: query and document per pair
        stages = [(steps, seconds, batch * (config.get("max_query_length", 0) + config["max_document_length"]))]
    else:
        return []
    if method == "lbr":  # stage 1: text, bottleneck and target in one sequence
        stage1_steps = train.get("stage1_steps", 0)
        per_text = config.get("max_text_length", 0) + config.get("k", 0) + config.get("max_target_length", 0)
        stages.append((stage1_steps, train.get("stage1_seconds_per_step", 0) * stage1_steps,
                       config.get("stage1_batch_size", 0) * per_text))
    return [stage for stage in stages if stage[0] and stage[1]]


def count_parameters(spec: str) -> int | None:
    """Parameters of a packaged alias, or of a local folder's safetensors weights."""
    if spec in KNOWN_PARAMETERS:
        return KNOWN_PARAMETERS[spec]
    files = sorted(Path(spec).rglob("*.safetensors")) if Path(spec).is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), "np") as weights:
            for name in weights.keys():
                shape = weights.get_slice(name).get_shape()
                total += math.prod(shape)
    return total


def row(result: dict, peak_tflops: float | None) -> dict[str, str]:
    info, train, meta = result["run_info"], result.get("train_info") or {}, result["meta_info"]
    config, key = info.get("config", {}), info["key"]
    block = result["scores"]["test"][0]
    stages = _stages(info["method"], config, train)
    tokens = sum(steps * per_step for steps, _seconds, per_step in stages)
    seconds = sum(seconds for _steps, seconds, _per_step in stages)
    parameters = count_parameters(str(config["model"])) if config.get("model") else None
    flops = 6 * parameters * tokens / seconds if parameters and seconds else None
    peak_memory = info.get("peak_gpu_memory_mb")

    def number(value, digits=0):
        return "–" if value is None else f"{value:,.{digits}f}"

    return {
        "baseline": key["baseline"],
        "device": meta.get("hardware", {}).get("device", "?"),
        "steps": " + ".join(str(steps) for steps, _s, _t in reversed(stages)) or "0",
        "wall s": number(info.get("wall_time_s"), 1),
        "train s": number(seconds or None, 1),
        "tokens/s": number(tokens / seconds if seconds else None),
        "model TFLOP/s": number(flops / 1e12 if flops else None, 2),
        "MFU %": number(100 * flops / (peak_tflops * 1e12) if flops and peak_tflops else None, 1),
        "peak GPU MiB": number(peak_memory),
        result.get("main_score", "ndcg_at_10"): f"{block['main_score']:.4f}",
        "recall@100": f"{block.get('recall_at_100', float('nan')):.4f}",
    }


def markdown_table(results: list[dict], peak_tflops: float | None) -> str:
    rows = [row(result, peak_tflops) for result in results]
    if not rows:
        return "(no results)\n"
    header = list(rows[0])
    numeric = [all(r[h].replace(",", "").replace(".", "").replace("–", "0").replace(" + ", "").isdigit() for r in rows)
               for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def read_results(results_dir: Path) -> list[dict]:
    paths = sorted(p for p in results_dir.rglob("*.json") if p.name.count("__") >= 3)
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def not_on_cuda(results: list[dict]) -> list[str]:
    """The runs whose recorded device is not a CUDA device."""
    return [f"{r['run_info']['key']['baseline']} ran on {r['meta_info'].get('hardware', {}).get('device')!r}"
            for r in results if not str(r["meta_info"].get("hardware", {}).get("device", "")).startswith("cuda")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    configs = commands.add_parser("configs", help="write the check's budget configs into DEST")
    configs.add_argument("destination", type=Path)
    configs.add_argument("--steps", type=int, required=True, help="optimiser steps per training stage")
    configs.add_argument("--dry-run", action="store_true", help="also shrink batches and lengths for tiny models")
    configs.add_argument("--model", help="dry run: the sentence-transformers model of every non-LLM baseline")
    configs.add_argument("--llm", help="dry run: the causal LM of lbr")
    table = commands.add_parser("table", help="print a Markdown table of the result files under RESULTS")
    table.add_argument("results", type=Path)
    table.add_argument("--require-cuda", action="store_true", help="fail unless every run recorded a cuda device")
    table.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, for MFU (H200: 989)")
    table.add_argument("--expect", type=int, help="fail unless exactly this many results are found")
    args = parser.parse_args(argv)
    if args.command == "configs":
        for path in write_configs(args.destination, args.steps, args.dry_run, args.model, args.llm):
            print(path)
        return 0
    results = read_results(args.results)
    if args.expect is not None and len(results) != args.expect:
        print(f"gpu_table: expected {args.expect} results under {args.results}, found {len(results)}", file=sys.stderr)
        return 1
    wrong = not_on_cuda(results) if args.require_cuda else []
    if wrong:
        print("gpu_table: CUDA was not used: " + "; ".join(wrong), file=sys.stderr)
        return 1
    print(markdown_table(results, args.peak_tflops), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
