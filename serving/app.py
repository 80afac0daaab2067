"""The deployable feature server: `uvicorn serving.app:app` (see serving/README.md).

The feature repo is `$FEATUREHUB_REPO` (default: the working directory); its featurehub.yaml
and the FEATUREHUB_* variables configure the stores, limits, API keys and the serving log.
"""

from __future__ import annotations

from featurehub.server.app import from_env

app = from_env()
