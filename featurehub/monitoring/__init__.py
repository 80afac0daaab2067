"""What was served: the serving log of every feature vector the server or the SDK served."""

from featurehub.monitoring.log_format import (
    AD_HOC,
    SCHEMA,
    SDK,
    SERVER,
    ServedAnswer,
    ServedRequest,
    decode,
)
from featurehub.monitoring.log_reader import read_serving_log
from featurehub.monitoring.log_writer import LogWriter
from featurehub.monitoring.sdk_log import SdkServingLog
from featurehub.monitoring.serving_log import ServingLog, ServingLogError, open_serving_log

__all__ = [
    "AD_HOC",
    "SCHEMA",
    "SDK",
    "SERVER",
    "LogWriter",
    "SdkServingLog",
    "ServedAnswer",
    "ServedRequest",
    "ServingLog",
    "ServingLogError",
    "decode",
    "open_serving_log",
    "read_serving_log",
]
