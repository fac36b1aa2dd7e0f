"""The HTML report is one self-contained page whose tables and plots render in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from harness.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.setAttribute('data-check', JSON.stringify({
    tables: document.querySelectorAll('table').length,
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length}));
});
</script></body>"""


@pytest.fixture
def results_with_report(tmp_path, tiny_task_dir, tiny_bert_dir):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\n')
    (baselines / "bm25.toml").write_text('method = "bm25"\n')
    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "bm25,frozen",
                 "--seeds", "0,1", "--out", str(out), "--baselines-dir", str(baselines)]) == 0
    return out


def test_report_is_self_contained_with_every_section(results_with_report):
    page = (results_with_report / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched from a network
    assert page.count("<img") == 3  # quality against time, the task's bars, its hierarchy lines
    assert page.count("data:image/png;base64,") == 3
    for heading in ("Leaderboard", "Paired comparisons", "Retrieval", "Hierarchical classification", "RAG hallucination proxies"):
        assert heading in page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
def test_report_renders_in_headless_chromium_with_all_tables_and_images(results_with_report, tmp_path):
    page = (results_with_report / "index.html").read_text().replace("</body>", CHECK)
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    check = json.loads(re.search(r"data-check=\"([^\"]*)\"", dom).group(1).replace("&quot;", '"'))
    assert check["tables"] == page.count("<table>") and check["tables"] >= 5
    assert check["images"] == 3 and check["decoded"] == 3
