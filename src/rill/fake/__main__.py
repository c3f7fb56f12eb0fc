"""``python -m rill.fake``: serve the fake OpenRouter until interrupted."""

from __future__ import annotations

import sys

from rill.fake.cli import main

sys.exit(main())
