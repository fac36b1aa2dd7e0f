#!/usr/bin/env bash
# Synthetic vs human training queries on cyber (issue #16): the same corpus and the same human dev/test
# queries (cyber's small profile), fine-tuned once on the human training queries and once on queries the
# packaged SmolLM2 generated from the corpus alone (`harness make-queries`), with frozen as the reference.
#   bash scripts/synthetic_vs_human.sh [WORK_DIR]        (default: ./synthetic-vs-human)
# Generation is the slow part on a CPU; it is cached, so an interrupted run resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-synthetic-vs-human}
PER_DOC=${PER_DOC:-1}
mkdir -p "$WORK"
if [ ! -f "$WORK/cyber-human/corpus.jsonl" ]; then
  python3 - "$WORK/cyber-human" <<'PY'
import sys
from pathlib import Path
from harness.builders.common import write_beir_folder
from harness.catalog import load_task
task = load_task("cyber", profile="small")  # the exact corpus and queries of the committed cyber results
corpus = [{"_id": d, "title": doc.title, "text": doc.text, "labels": list(doc.labels)} for d, doc in task.corpus.items()]
write_beir_folder(Path(sys.argv[1]), corpus, task.queries, task.qrels)
PY
fi
python3 -m harness make-queries --task-dir "$WORK/cyber-human" --out-dir "$WORK/cyber-synthetic" \
  --splits train --per-doc "$PER_DOC" --filter bm25 --top-k 3 --seed 0 --batch-size 16 --max-new-tokens 32
for folder in cyber-human cyber-synthetic; do
  python3 -m harness run --task-dir "$WORK/$folder" --methods frozen,contrastive --seeds 0 --threads 1 --no-progress
done
