# Fixtures shared by every app's tests live in coditect/testing.py and
# coditect/personas.py. A star import skips names with a leading underscore,
# so the autouse ones are named.
from coditect.personas import *  # noqa: F403
from coditect.redis_cluster_testing import redis_cluster  # noqa: F401
from coditect.testing import *  # noqa: F403
from coditect.testing import _redis_namespace  # noqa: F401
