"""cleanlab-ng: find the mislabeled samples in a dataset and hand back a clean one."""

__version__ = "0.1.0"

from .data import Dataset, load_dataset  # noqa: E402
from .detectors import DETECTORS, DetectorResult, get_detector  # noqa: E402
from .errors import CleanlabNgError, ConfigError, DatasetError  # noqa: E402
from .pipeline import CleanResult, clean  # noqa: E402

__all__ = [
    "CleanResult",
    "CleanlabNgError",
    "ConfigError",
    "DETECTORS",
    "Dataset",
    "DatasetError",
    "DetectorResult",
    "clean",
    "get_detector",
    "load_dataset",
]
