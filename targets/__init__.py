"""Deployment targets: device profiles (Jetson family, desktop CUDA, CPU) and the request check.

Pure data and small logic, stdlib only: export and the on-device runtime both read it::

    >>> from targets import get_target, list_targets, check_request
    >>> get_target("jetson-nano").precisions
    ('fp32', 'fp16')
"""
from targets.check import MEMORY_FRACTION, RequestCheck, best_precision, check_request
from targets.profiles import PRECISIONS, RUNTIME_PYTHON, RUNTIME_TENSORRT, Target, get_target, list_targets

__all__ = ["MEMORY_FRACTION", "PRECISIONS", "RUNTIME_PYTHON", "RUNTIME_TENSORRT", "RequestCheck", "Target",
           "best_precision", "check_request", "get_target", "list_targets"]
