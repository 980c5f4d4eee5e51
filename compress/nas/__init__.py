"""`edgekit nas`: the most accurate ResNet8/10-like net that fits a device's latency and memory budget.

| module | what |
| --- | --- |
| `space.py` | the search space (stem, stages, blocks and widths per stage, input size) and `Arch`, a plain spec the `resnet_nas` zoo family builds |
| `costs.py` | what a candidate costs: memory (weights + peak activations), latency measured with ONNX Runtime on the host (`cpu`), looked up in a device's latency table, or estimated by a per-layer latency model (fitted on measurements, or nominal device figures); default budgets |
| `objective.py` | proxy training on the user's data (train streams), scored on the val streams, with early stopping of poor trials |
| `study.py` | the Optuna study (NSGA-II, constrained by the budget), its storage (journal file, SQLite or a database URL), worker processes, its seeds (the references scaled) |
| `finalists.py` | the last step: the best under budget by proxy compared by cross-validation over the streams outside test, the best mean trained by `edgekit train`'s recipe and kept |
| `workers.py` | the worker processes (spawned, one torch thread each) the trials and the finalists' folds run in |
| `archs.py` | candidate ONNX files for a device to time (`edgekit nas-archs` -> `edgekit bench-archs` -> `--latency-table`) |
| `report.py` | the Pareto front as JSON, Markdown and PNG |
"""
from __future__ import annotations


def check_request(task: str, target: str, budget_ms=None, max_mb=None, trials: int = 1, workers: int = 1,
                  budget_ratio=None) -> None:
    """Refuse a request that cannot work in one line, before torch loads: an unknown task or target, a
    detection task, a budget that is not positive, no trials or workers. (`NasSettings` calls it too.)"""
    from edge.core.errors import BadInputError, UnsupportedError
    from edge.core.tasks import DETECTION, get_task
    from targets import get_target

    if get_task(task).kind == DETECTION:
        raise UnsupportedError("edgekit nas searches classifiers (single- and multi-label tasks), not the detector: "
                               "a Faster R-CNN's proxy training takes minutes per candidate on a CPU; search the "
                               "backbone on a classification task of the same data (e.g. --task anatomy)")
    get_target(target)
    for what, v in (("--budget-ms", budget_ms), ("--max-mb", max_mb), ("--budget-ratio", budget_ratio)):
        if v is not None and not v > 0:
            raise BadInputError(f"{what} {v} must be a positive number (a budget of zero or less fits nothing)")
    if budget_ms is not None and budget_ratio is not None:
        raise BadInputError(f"--budget-ms {budget_ms} and --budget-ratio {budget_ratio}: give one of them")
    if trials < 1 or workers < 1:
        raise BadInputError(f"--trials {trials} and --workers {workers} must be at least 1")
