# Fixtures shared by every app's tests live in coditect/testing.py.
from coditect.testing import *  # noqa: F403
