"""What the server did: the serving log of every feature vector served."""

from featurehub.monitoring.log_format import AD_HOC, SCHEMA, ServedAnswer, ServedRequest, decode
from featurehub.monitoring.log_writer import LogWriter
from featurehub.monitoring.serving_log import ServingLog

__all__ = [
    "AD_HOC",
    "SCHEMA",
    "LogWriter",
    "ServedAnswer",
    "ServedRequest",
    "ServingLog",
    "decode",
]
