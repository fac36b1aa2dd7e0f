"""How HNMFk's time and memory grow with corpus size, on a synthetic and on a real corpus (issue 8, item 5).

    python benchmarks/hnmfk_scaling.py --sizes 500,1000,2000 --sources synthetic,cyber

Each (source, size) runs `harness.hnmfk.fit_hnmfk` in a fresh process, so one measurement's
memory never counts against the next. Reported per run: wall and CPU seconds, how far the
process's resident-set high-water mark rose during the fit, and with --trace-heap the
Python/numpy heap peak seen by tracemalloc. The growth exponent b is the least-squares slope of
log(metric) on log(size), i.e. metric ~ size^b.

Sources:
* synthetic: 4 topics x 3 subtopics of generated word documents (the shape the tests plant);
* cyber: the cyber task's ATT&CK technique texts (637), then its procedure-example queries, in
  file order, for sizes beyond the corpus, so every size is real cybersecurity prose.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from harness.methods.hnmfk import HNMFkConfig, fit_hnmfk


def synthetic_texts(n_docs: int, seed: int = 0, n_topics: int = 4, n_subtopics: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    filler = [f"common{i}" for i in range(60)]
    texts = []
    for doc in range(n_docs):
        topic, sub = divmod(doc % (n_topics * n_subtopics), n_subtopics)
        words = [*rng.choice([f"topic{topic}word{i}" for i in range(40)], 10),
                 *rng.choice([f"topic{topic}sub{sub}word{i}" for i in range(25)], 6),
                 *rng.choice(filler, 10)]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts


def cyber_texts(n_docs: int) -> list[str]:
    from harness.catalog import load_task

    task = load_task("cyber", profile="full")
    texts = [doc.full_text for doc in task.corpus.values()] + list(task.queries.values())
    if n_docs > len(texts):
        raise SystemExit(f"the cyber task has {len(texts)} texts (corpus + queries), fewer than {n_docs}")
    return texts[:n_docs]


SOURCES = {"synthetic": synthetic_texts, "cyber": cyber_texts}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(source: str, size: int, config: HNMFkConfig, trace_heap: bool) -> dict:
    """One fit in this (fresh) process, texts built before the clocks start.

    CPU seconds matter on a shared machine, where wall time also counts other people's work.
    tracemalloc roughly triples the run time, so the heap peak comes from a second, traced fit.
    """
    texts = SOURCES[source](size)
    rss_before = _rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    hierarchy = fit_hnmfk(texts, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {
        "source": source, "size": size, "wall_s": wall, "cpu_s": cpu, "rss_rise_mib": _rss_mib() - rss_before,
        "heap_peak_mib": float("nan"), "root_k": hierarchy.chosen_k.get("", 1),
        "nodes_fitted": len(hierarchy.chosen_k), "leaves": len(set(hierarchy.paths)),
    }
    if trace_heap:
        tracemalloc.start()
        fit_hnmfk(texts, config)
        row["heap_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return row


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(values, 1e-9)), 1)[0])


def report(rows: list[dict]) -> str:
    lines = [f"{'source':<10} {'docs':>6} {'wall s':>7} {'CPU s':>7} {'RSS+ MiB':>9} {'heap MiB':>9} "
             f"{'root k':>6} {'nodes':>6} {'leaves':>6}"]
    for r in rows:
        lines.append(f"{r['source']:<10} {r['size']:>6} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} {r['rss_rise_mib']:>9.1f} "
                     f"{r['heap_peak_mib']:>9.1f} {r['root_k']:>6} {r['nodes_fitted']:>6} {r['leaves']:>6}")
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        if len(mine) < 2:
            continue
        sizes = [r["size"] for r in mine]
        fits = [f"CPU time ~ n^{growth_exponent(sizes, [r['cpu_s'] for r in mine]):.2f}",
                f"RSS rise ~ n^{growth_exponent(sizes, [r['rss_rise_mib'] for r in mine]):.2f}"]
        if not np.isnan(mine[0]["heap_peak_mib"]):
            fits.append(f"heap peak ~ n^{growth_exponent(sizes, [r['heap_peak_mib'] for r in mine]):.2f}")
        lines.append(f"{source}: " + ", ".join(fits))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000,5000,10000", help="comma-separated corpus sizes")
    parser.add_argument("--sources", default="synthetic,cyber", help=f"comma-separated, of {sorted(SOURCES)}")
    parser.add_argument("--k-max", type=int, default=HNMFkConfig.k_max)
    parser.add_argument("--perturbations", type=int, default=HNMFkConfig.n_perturbations)
    parser.add_argument("--max-depth", type=int, default=HNMFkConfig.max_depth)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads in each measuring process")
    parser.add_argument("--trace-heap", action="store_true", help="also measure the heap peak (a second, slower fit)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    sources = args.sources.split(",")
    unknown = set(sources) - set(SOURCES)
    if unknown:
        parser.error(f"unknown source(s) {sorted(unknown)}; choose from {sorted(SOURCES)}")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)  # read by numpy's BLAS when a spawned process imports it
    config = HNMFkConfig(k_max=args.k_max, n_perturbations=args.perturbations, max_depth=args.max_depth)
    print(f"config: {config}", flush=True)
    rows = []
    context = multiprocessing.get_context("spawn")
    for source in sources:
        for size in sizes:
            with context.Pool(1, maxtasksperchild=1) as pool:
                row = pool.apply(measure, (source, size, config, args.trace_heap))
            print(f"  {source} {size}: {row['cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)
            rows.append(row)
    print(report(rows))


if __name__ == "__main__":
    main()
