"""``python -m app``: see ``app.process.main``."""

from __future__ import annotations

import sys

from app.process.main import main

if __name__ == "__main__":
    sys.exit(main())
