"""
Settings shared by the whole test suite.
"""

from hypothesis import settings

# Speed is measured in benchmarks, not in tests: on a loaded machine any
# example can stall, so hypothesis's per-example deadline is switched off.
settings.register_profile("roaming", deadline=None)
settings.load_profile("roaming")
