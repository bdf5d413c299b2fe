"""``python -m analyses.registry FILE``: rewrite FILE's generated table of analyses."""

import sys
from pathlib import Path

from analyses.registry import with_table

for name in sys.argv[1:]:
    path = Path(name)
    path.write_text(with_table(path.read_text()))
