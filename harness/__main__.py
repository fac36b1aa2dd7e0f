"""`python -m harness`: the same as the `harness` console script, which is the primary entry point."""

import os
import sys

# `python -m` puts the working directory first on sys.path, so a stray `bm25s.py` or `torch/` there would
# shadow the installed package. `harness` itself is imported already; the working directory moves to the
# end, where installed packages win over it and a `--plugin my_module` lying there is still importable.
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.append(sys.path.pop(0))

from harness.cli import main  # noqa: E402

raise SystemExit(main())
