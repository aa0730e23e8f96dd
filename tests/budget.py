"""How many examples a hypothesis test runs: a weight, scaled by the loaded profile.

Profiles (registered here, chosen by HYPOTHESIS_PROFILE; CI loads `ci`):
`dev` (a fifth of CI's examples: the inner loop), `ci`, and `thorough`
(ten times CI's, for long local runs). A test says how many examples it
runs under `ci` (`examples(300)`); a cheap property gets many, a test that
runs a whole query per example few, and every profile keeps those ratios.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = {"dev": 0.2, "ci": 1.0, "thorough": 10.0}
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


def examples(under_ci: int) -> int:
    """`under_ci` examples under the ci profile, scaled for the loaded one (at least 1)."""
    return max(1, round(under_ci * SCALE.get(PROFILE, 1.0)))
