# The personas, the API clients and `call` are shared by every app's tests
# (coditect/personas.py, through the root conftest.py); `bearer` stays
# importable from here for the tests that import it so.
from coditect.personas import bearer  # noqa: F401
