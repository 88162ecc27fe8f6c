"""The image's HEALTHCHECK (for `docker run` and Cloud Run; Kubernetes probes itself).

Liveness only: any HTTP answer from /health means the process is up. A 400
counts too: outside Kubernetes, 127.0.0.1 need not be in ALLOWED_HOSTS.
"""

import os
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health", timeout=2)
except urllib.error.HTTPError:
    pass
except OSError as error:
    sys.exit(f"not answering: {error}")
