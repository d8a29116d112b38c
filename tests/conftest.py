"""Test-wide settings.

Hypothesis runs derandomized (the same examples on every run and machine, as a CI run must
be deterministic) and without its per-example deadline (a 2-core CI machine under load
is slow, not wrong). ``HYPOTHESIS_PROFILE=explore pytest ...`` searches with fresh random
examples and more of them, to look for new counter-examples on purpose.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
