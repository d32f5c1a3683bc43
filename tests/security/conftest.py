"""Security-MUST fixtures: the governed rig (tests/security/rig.py) and the shared sample-server stack."""

from tests.fixtures.sidecar import *  # noqa: F403
from tests.security.rig import rig  # noqa: F401
