"""Google's edge in a test server's process (never in production: only a
test puts this directory on a server's PYTHONPATH).

Python imports `sitecustomize` at start-up; with CODITECT_TEST_GOOGLE_EDGE
naming a file GoogleEdge.save wrote, the server's firebase-admin and
google-auth calls to Google's hosts are answered by that edge (the same key
signs the test's ID tokens), and every other call goes to the network code
unchanged.
"""

import os
import sys

_config = os.environ.get("CODITECT_TEST_GOOGLE_EDGE")
if _config:
    sys.path.insert(0, os.environ["CODITECT_TEST_BASE_DIR"])
    from accounts.tests.google_edge import GoogleEdge

    GoogleEdge.from_file(_config).install()
