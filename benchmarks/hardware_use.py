"""How much of the machine's matrix throughput encoding uses, in fp32 and bf16, measured in one run.

Encoding rate in GFLOP/s = 2 x non-embedding parameters x tokens / seconds (the usual forward-pass
estimate; attention's sequence-length term is left out, so this slightly understates the work).
Two references, timed in the same process with the same threads and dtype: a square 2048 matmul
(the machine's best case) and the model's own feed-forward matmul shape (64 x 128 tokens by
hidden -> intermediate), which is what encoding can hope to reach. A third row encodes in bf16 with
the harness's `compile = true` (torch.compile, inductor with frozen weights), after a warm-up that
includes the compile (its time is printed). `--profile` adds a torch profiler table of the eager bf16
encode, to show where the rest of the time goes.

    python benchmarks/hardware_use.py --task cyber --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def matmul_gflops(dtype, m: int = 2048, k: int = 2048, n: int = 2048, repeats: int = 10) -> float:
    import torch

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.mm(a, b)  # warm-up: kernels and caches
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * m * k * n * repeats / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cyber")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=1000, help="documents and queries encoded")
    parser.add_argument("--batch-size", type=int, default=64, help="encode batch (the harness's default: 64)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of the bf16 encode")
    args = parser.parse_args()

    import torch

    from harness.catalog import load_task
    from harness.device import bf16_supported
    from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
    from harness.models import resolve_model_path

    torch.set_num_threads(args.threads)
    task = load_task(args.task, profile="small")
    texts = ([d.full_text for d in task.corpus.values()] + list(task.split_queries("test").values()))[: args.texts]
    model = load_sentence_transformer(resolve_model_path("minilm"), "cpu", max_seq_length=256)
    tokens = sum(min(len(ids), 256) for ids in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"])
    parameters = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    print(f"{len(texts)} texts, {tokens} tokens, {parameters / 1e6:.1f}M non-embedding parameters, {args.threads} threads, "
          f"batch {args.batch_size}, bf16 units: {bf16_supported('cpu')}")
    # compiled last: compiling replaces the model's forward
    for label, precision, dtype, compiled in (("fp32", "fp32", torch.float32, False), ("bf16", "bf16", torch.bfloat16, False),
                                              ("bf16 compiled", "bf16", torch.bfloat16, True)):
        settings = EncodeSettings(precision=precision, show_progress=False, compile=compiled, batch_size=args.batch_size)
        encoder = SentenceTransformerEncoder(model, settings, "cpu")
        started = time.perf_counter()
        encoder.encode(texts[:64], "document")  # warm-up (and the compile)
        warm_up = time.perf_counter() - started
        started = time.perf_counter()
        encoder.encode(texts, "document")
        seconds = time.perf_counter() - started
        encode_rate = 2 * parameters * tokens / seconds / 1e9
        peak = matmul_gflops(dtype)
        config = model[0].auto_model.config
        shaped = matmul_gflops(dtype, 64 * 128, config.hidden_size, config.intermediate_size, repeats=20)
        print(f"{label}: encode {seconds:6.2f} s = {tokens / seconds:8.0f} tok/s = {encode_rate:7.1f} GFLOP/s; "
              f"matmul 2048^3 {peak:7.1f} GFLOP/s, ratio {encode_rate / peak:.2f}"
              + ("   (target >= 0.60)" if dtype == torch.bfloat16 else "")
              + f"; model-shaped matmul {shaped:7.1f} GFLOP/s, ratio {encode_rate / shaped:.2f}; warm-up {warm_up:.1f} s")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        model = load_sentence_transformer(resolve_model_path("minilm"), "cpu", max_seq_length=256)  # eager again
        encoder = SentenceTransformerEncoder(model, EncodeSettings(precision="bf16", show_progress=False), "cpu")
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            encoder.encode(texts[:256], "document")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
