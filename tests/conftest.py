from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

FIXTURES = Path(__file__).parent / "fixtures"

# Property tests judge correctness, never speed: on a loaded 2-core CI machine (labs and Go builds
# beside them) hypothesis's per-example deadline and "too slow" health check fail tests that are right.
# Speed lives in benchmarks/. Example counts stay as each test sets them.
settings.register_profile("kube-audit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kube-audit")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
