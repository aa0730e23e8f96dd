"""How many examples a hypothesis test runs: a weight, scaled by the loaded profile.

Profiles (registered here, chosen by HYPOTHESIS_PROFILE; CI loads `ci`):
`dev` (a fifth of a test's weight: the inner loop), `ci` (three quarters),
and `thorough` (ten times, for long local runs). A test gives its weight
(`examples(300)`); a cheap property gets much, a test that runs a whole
query per example little, and every profile keeps those ratios.

Why `ci` is three quarters: at the full weights the suite's test phase took
476-549 s on the 2-core CI machine (9 min 48 s in all at worst), against a
10-minute limit; the examples are about 210 s of it (dev's 310 s against
ci's 480). Each run draws new examples, so coverage still adds up over runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = {"dev": 0.2, "ci": 0.75, "thorough": 10.0}
for _name, _scale in SCALE.items():
    settings.register_profile(
        _name,
        max_examples=max(1, round(100 * _scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        print_blob=True,
    )
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def examples(weight: int) -> int:
    """A test's `weight` in examples, scaled for the loaded profile (at least 1)."""
    return max(1, round(weight * SCALE.get(PROFILE, 1.0)))
