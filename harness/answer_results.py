"""Generated answers for stored results: `harness answer` (and `harness run --generator`).

A result's stored run file already ranks every test query, so answering needs no refit: the top-k
documents of each sampled query go to a local causal LM, the answers are cached beside the result
(`<result>.answers.jsonl`, never generated twice) and their support proxies (harness/rag_generation.py)
are merged into the result's scores, with `run_info.generation` saying how they were made. A result that
already holds answers made with the same settings is left alone unless `overwrite`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.errors import HarnessError
from harness.results import RUN_FILE_DEPTH, Result, write_result_json
from harness.search import Run
from harness.stored_runs import load_stored, stored_result_paths
from harness.task import Task

if TYPE_CHECKING:
    from harness.rag_generation import AnswerSupport

# every score name the generator-based proxies write (they all end in _at_{k})
GENERATED_SCORE = re.compile(r"^(answer_|unsupported_sentence_rate_|hallucinated_answer_rate_).*_at_\d+$")


@dataclass(frozen=True)
class AnswerSettings:
    generator: str = "smollm2"  # packaged alias or local Hugging Face folder (a bigger LM is this one flag)
    k: int = 3  # contexts per answer
    max_queries: int | None = 100  # seeded sample of the split; None = all (SmolLM2: ~6 s per answer on one core)
    sample_seed: int = 0
    max_new_tokens: int = 128
    max_context_chars: int = 1500
    nli_model: str | None = None  # local NLI cross-encoder folder; adds the nli_* scores


@lru_cache(maxsize=2)
def _generator(spec: str, device: str, max_new_tokens: int):
    from harness.generation import causal_lm_generator
    from harness.llm import load_causal_lm

    model, tokenizer = load_causal_lm(spec, device)
    return causal_lm_generator(model, tokenizer, max_new_tokens=max_new_tokens, name=spec)


def generation_scores(task: Task, split: str, run: Run, settings: AnswerSettings, device: str,
                      answers_path: Path) -> tuple[AnswerSupport, dict]:
    """(answer support scores with per-query outcomes, the `run_info.generation` record) for `run`'s top-k contexts."""
    from harness.rag_generation import GenerationSettings, answer_support_scores, cross_encoder_nli, generate_answers

    if settings.k > RUN_FILE_DEPTH:
        raise HarnessError(f"k={settings.k} exceeds the {RUN_FILE_DEPTH} documents a stored run keeps per query")
    generate = _generator(settings.generator, device, settings.max_new_tokens)
    generation = GenerationSettings(max_queries=settings.max_queries, sample_seed=settings.sample_seed,
                                    max_context_chars=settings.max_context_chars)
    answers = generate_answers(task, split, run, generate, settings.k, answers_path, settings=generation)
    nli = cross_encoder_nli(settings.nli_model, device) if settings.nli_model else None
    support = answer_support_scores(task, split, answers, settings.k, nli)
    info = {**asdict(settings), "generator_fingerprint": generate.fingerprint, "n_answers": len(answers),
            "answers_file": answers_path.name}
    return support, info


def answer_result(path: Path, load_task: Callable[[str], Task], settings: AnswerSettings, device: str,
                  overwrite: bool = False, command: str = "") -> bool:
    """Add generated-answer scores to the stored result at `path` (its task loaded by `load_task(profile)`);
    False when it already had answers made with these settings."""
    result = Result.from_json(json.loads(path.read_text(encoding="utf-8")))
    done = result.run_info.get("generation", {})
    if not overwrite and {k: done.get(k) for k in asdict(settings)} == asdict(settings):
        return False
    result, task, run = load_stored(path, load_task, "answering from it")
    support, info = generation_scores(task, result.split, run, settings, device, path.with_suffix(".answers.jsonl"))
    kept = {name: value for name, value in result.scores.items() if not GENERATED_SCORE.match(name)}
    kept_per_query = {name: values for name, values in result.per_query_other.items() if not GENERATED_SCORE.match(name)}
    updated = replace(result, scores={**kept, **support.scores}, per_query_other={**kept_per_query, **support.per_query},
                      run_info={**result.run_info, "generation": {**info, "command": command}})
    write_result_json(path, updated)
    return True


def answer_stored(results_dir: Path, tasks: dict[str, Callable[[str], Task]], baselines: list[str],
                  seeds: tuple[int, ...], settings: AnswerSettings, device: str, overwrite: bool,
                  command: str = "") -> list[Path]:
    """Answer from every stored result of these tasks (name -> loader by profile), baselines and seeds.

    Every (task, baseline) must have a stored result: a missing one is an error before anything is generated."""
    plan = {name: stored_result_paths(results_dir, name, baselines, seeds) for name in tasks}
    for name, paths in plan.items():
        missing = sorted(set(baselines) - {p.parent.name for p in paths})
        if missing:
            raise HarnessError(f"no stored {name} result for {', '.join(missing)} (seeds {list(seeds)}) under "
                               f"{results_dir}: run it first")
    updated = []
    for name, paths in plan.items():
        load = lru_cache(maxsize=None)(tasks[name])
        for path in paths:
            print(f"[harness] answer {path.relative_to(results_dir)} ({settings.generator}, k={settings.k})",
                  file=sys.stderr, flush=True)
            if answer_result(path, load, settings, device, overwrite, command):
                updated.append(path)
    return updated
