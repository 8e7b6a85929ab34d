"""cleanlab-ng: find the mislabeled samples in a dataset and hand back a clean one."""

from importlib import import_module

__version__ = "0.1.0"

# the public names, each loaded from its module on first use: importing the package (as
# ``cleanlab-ng --help`` does) must not wait seconds for torch, scikit-learn and pandas
_PUBLIC = {
    "CleanResult": "pipeline",
    "CleanlabNgError": "errors",
    "ConfigError": "errors",
    "DETECTORS": "detectors",
    "Dataset": "data",
    "DatasetError": "errors",
    "DetectorResult": "detectors",
    "LabelIssueFinder": "estimator",
    "clean": "pipeline",
    "find_label_issues": "estimator",
    "get_detector": "detectors",
    "load_dataset": "data",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
