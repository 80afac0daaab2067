"""What the server did: the serving log of every feature vector served."""

from featurehub.monitoring.serving_log import AD_HOC, SCHEMA, ServedRequest, ServingLog

__all__ = ["AD_HOC", "SCHEMA", "ServedRequest", "ServingLog"]
