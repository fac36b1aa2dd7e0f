"""The environment is the lock: what is installed equals requirements.lock, and a wheel carries tasks and configs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata

from packaging.requirements import Requirement

from harness.paths import CHECKOUT_ROOT

LOCK = CHECKOUT_ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_locked_package_is_pinned_with_a_hash():
    text = LOCK.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[-1])
    packages = [b for b in blocks if PIN.match(b)]
    assert len(packages) > 50
    assert all("--hash=sha256:" in block for block in packages), [b.split()[0] for b in packages if "--hash" not in b]


def test_installed_environment_equals_the_lock():
    """CI and `make test` install from the lock: a drifted environment would test something else."""
    drifted = {}
    for name, version in locked_versions().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drifted[name] = (version, installed)
    assert not drifted, f"installed packages differ from requirements.lock (locked, installed): {drifted}"


def test_lock_satisfies_every_direct_dependency():
    """A dependency edited in pyproject.toml without `make lock` fails here."""
    pins = {_normal(k): v for k, v in locked_versions().items()}
    requirements = [Requirement(r) for r in metadata.requires("harness") or []]
    unmet = []
    for requirement in requirements:
        if requirement.marker and not requirement.marker.evaluate({"extra": "test"}) and not requirement.marker.evaluate({"extra": "ray"}):
            continue
        name = _normal(requirement.name)
        if name == "torch":  # installed first by scripts/install.sh, outside the lock
            continue
        if name not in pins or not requirement.specifier.contains(pins[name], prereleases=True):
            unmet.append(f"{requirement} (locked: {pins.get(name)})")
    assert not unmet, unmet


def test_wheel_ships_task_cards_and_baselines_and_writes_results_to_the_working_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(CHECKOUT_ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("harness-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "harness/cards/cyber.toml" in names and "harness/cards/cyber.md" in names
    assert "harness/baseline_configs/heal.toml" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    work = tmp_path / "work"
    work.mkdir()
    probe = ("from harness import paths; from harness.catalog import TASKS; from harness.baselines import baseline_names;"
             "print(paths.TASK_CARDS_DIR.parent.name, len(TASKS.names()), 'heal' in baseline_names(), paths.default_results_dir())")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["harness", "6", "True", str(work / "results")]
