"""Device, threads and precision choices, made once per run."""

from __future__ import annotations

import contextlib
import os

import torch


def process_rank() -> int:
    """This process's rank under torchrun (the trainer's DDP); 0 when run alone."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Only rank 0 scores, saves models and writes results; the other ranks only train."""
    return process_rank() == 0


def end_distributed() -> None:
    """Leave the process group the trainer opened under torchrun: a rank that exits with it still open can abort
    in teardown ("terminate called without an active exception", seen once in CI on 2 loaded cores)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def resolve_device(requested: str = "auto") -> str:
    if requested == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        local_rank = os.environ.get("LOCAL_RANK")  # torchrun: one GPU per process
        return f"cuda:{local_rank}" if local_rank is not None else "cuda"
    return requested


def set_threads(threads: int | None) -> None:
    """On 2 shared cores one thread is sometimes faster; the user decides (`--threads`)."""
    if threads:
        torch.set_num_threads(threads)


def bf16_supported(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, probe, lambda: False)() for probe in probes)


def use_bf16(precision: str, device: str) -> bool:
    """`auto` means bf16 where the hardware has bf16 matrix units, else fp32."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if precision == "auto":
        return bf16_supported(device)
    raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    if use_bf16(precision, device):
        return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
