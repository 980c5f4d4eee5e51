"""The search: an Optuna study (NSGA-II, three objectives, the budget as constraints), its workers, the result.

    >>> rep = search(NasSettings(task="plane", data="phantom/", out="runs/nas", target="cpu",
    ...                          budget_ms=0.5, trials=40, workers=2))             # doctest: +SKIP
    >>> rep["best"]["arch"]["key"], rep["final"]["checkpoint"]                     # doctest: +SKIP

Objectives: maximise the val figure after proxy training (`compress.nas.objective`), minimise latency
and memory (`compress.nas.costs`). The budget enters as NSGA-II's constraints (latency - budget,
memory - max), so feasible candidates always outrank infeasible ones and the population is pushed
under the budget, while the front beside it is still mapped.

Start and finish: the first trials are the references the space holds and the seeds, those references
with their widths scaled (`scales`) at every input size of the space; the last step trains the
`finalists` best under budget by proxy figure by cross-validation over the streams outside test
(`compress.nas.finalists`) and trains the best of them fully.

Scaling: every worker is an ordinary Optuna worker on one shared storage. `--workers N` starts N
processes here (spawned, one torch thread each); more machines join by running the same command with
the same `--storage` (a database URL, or a journal file on a shared file system) and `--study-name`.
Optuna's `MaxTrialsCallback` stops every worker once the study holds `trials` trials, so the count is
for the whole study, wherever its trials ran. The default storage is a journal file in the output
folder (`study.journal`), so a second run into the same folder resumes the study.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from compress.nas.objective import ProxySettings
from compress.nas.space import REFERENCES, SearchSpace
from compress.nas.workers import one_thread, pin_threads, spawn_pool
from edge.core.errors import BadInputError, UnsupportedError

DIRECTIONS = ("maximize", "minimize", "minimize")     # accuracy, latency_ms, memory_mb


@dataclass(frozen=True)
class NasSettings:
    """One search; checked when made, so a bad request fails in one line before anything loads."""

    task: str
    data: str
    out: str
    target: str = "cpu"
    budget_ms: float | None = None           # None: the target's derived default (`costs.default_budget`)
    budget_ratio: float | None = None        # instead of budget_ms: this fraction of ResNet8's latency at input_size
    max_mb: float | None = None
    input_size: tuple[int, int] = (64, 64)   # the references are measured at this size
    space: SearchSpace = field(default_factory=SearchSpace)
    trials: int = 40
    workers: int = 1
    storage: str | None = None               # None: a journal file in `out`
    study_name: str | None = None
    population: int | None = None            # NSGA-II generation size (None: trials / 5, 4..20)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    references: tuple[str, ...] = ("resnet8", "resnet10", "resnet34")
    scales: tuple[float, ...] = (0.75, 0.5, 0.25)   # the references in the space at these widths: first candidates
    latency_table: str | None = None
    latency_rounds: int = 20
    final_epochs: int = 8                    # 0: no final training
    finalists: int = 5                       # the best under budget by proxy, compared by cross-validation
    folds: int = 3                           # their folds (`compress.nas.finalists`); 1: train's val split
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        from compress.nas import check_request

        check_request(self.task, self.target, self.budget_ms, self.max_mb, self.trials, self.workers, self.budget_ratio)
        if self.final_epochs < 0 or self.proxy.epochs < 1:
            raise BadInputError(f"--epochs {self.final_epochs} must be 0 or more and --proxy-epochs "
                                f"{self.proxy.epochs} at least 1")
        unknown = [r for r in self.references if r not in REFERENCES]
        if unknown:
            raise BadInputError(f"--references {', '.join(unknown)}: expected some of {', '.join(REFERENCES)}")
        if self.finalists < 1 or self.folds < 1 or any(not 0 < f <= 4 for f in self.scales):
            raise BadInputError(f"--finalists {self.finalists} and --folds {self.folds} must be at least 1 and "
                                f"--scales {','.join(map(str, self.scales))} within 0..4 (e.g. 0.75,0.5,0.25)")
        if self.population is not None and self.population < 2:
            raise BadInputError(f"--population {self.population} must be at least 2")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def population_or_default(self) -> int:
        return self.population or max(4, min(20, self.trials // 5))

    @property
    def name(self) -> str:
        return self.study_name or f"nas-{self.task}-{self.target}"

    def fingerprint(self, budget: dict) -> dict:
        """What must agree for two runs to share one study (the data path may differ between machines)."""
        latency = {"budget_ratio": self.budget_ratio} if self.budget_ratio else {"budget_ms": budget["budget_ms"]}
        return {"task": self.task, "target": self.target, **latency, "max_mb": budget["max_mb"],
                "space": self.space.to_dict(), "proxy": self.proxy.to_dict(), "latency_table": bool(self.latency_table)}


# --- storage ---------------------------------------------------------------------------------------
def storage_url(settings: NasSettings) -> str:
    return settings.storage or f"journal:{Path(settings.out) / 'study.journal'}"


def open_storage(url: str):
    """An Optuna storage for `url`: `journal:PATH` (or a path ending .journal/.log) is a journal file
    (`JournalStorage(JournalFileBackend)`: many processes, or machines on a shared file system); anything
    else is a database URL for `RDBStorage` (`sqlite:///study.db`, `postgresql://...`, `mysql://...`).
    A storage that cannot be opened is one BadInputError line."""
    import warnings

    import optuna

    journal = url[len("journal:"):] if url.startswith("journal:") else (
        url if "://" not in url and url.endswith((".journal", ".log")) else None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if journal is not None:
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(journal))
            if "://" not in url:
                raise ValueError("not a URL")
            return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=300)
    except Exception as exc:  # whatever the driver raises (sqlalchemy, a missing DB module, the file system)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BadInputError(f"--storage {url!r} cannot be opened ({type(exc).__name__}: {first}); expected "
                            f"sqlite:///PATH, a database URL (postgresql://..., mysql://...) or journal:PATH") from None


def _constraints(trial) -> list[float]:
    """NSGA-II's constraints: <= 0 is within budget (latency, memory)."""
    return list(trial.user_attrs.get("constraints", (0.0, 0.0)))


def _core_constraints() -> bool:
    """Optuna 5 sets constraints on the trial (`Trial.set_constraint`); 4.x reads them through the
    sampler's `constraints_func` (deprecated in 5)."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def _sampler(settings: NasSettings, index: int):
    import optuna

    extra = {} if _core_constraints() else {"constraints_func": _constraints}
    return optuna.samplers.NSGAIISampler(population_size=settings.population_or_default, seed=settings.seed + index,
                                         **extra)


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(settings: NasSettings, budget: dict, index: int = 0, create: bool = False):
    """The study on the shared storage; created (or checked to be this search's) when `create`."""
    import optuna

    _quiet_optuna()
    storage = open_storage(storage_url(settings))
    sampler = _sampler(settings, index)
    if not create:
        return optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
    study = optuna.create_study(study_name=settings.name, storage=storage, sampler=sampler,
                                directions=list(DIRECTIONS), load_if_exists=True)
    mine = json.loads(json.dumps(settings.fingerprint(budget)))
    theirs = study.user_attrs.get("fingerprint")
    if theirs is None:
        study.set_user_attr("fingerprint", mine)
    elif theirs != mine:
        diff = sorted(k for k in mine if mine.get(k) != theirs.get(k))
        raise BadInputError(f"study {settings.name!r} in {storage_url(settings)} was made for another search "
                            f"({', '.join(diff)} differ); pass another --study-name or --out")
    return study


# --- one worker --------------------------------------------------------------------------------------
class _Worker:
    """What one process needs for its trials: the data, the latency source, the budget."""

    def __init__(self, settings: NasSettings, budget: dict, index: int, anchor: dict | None = None):
        from compress.nas.objective import ProxyData

        self.settings, self.budget, self.index = settings, budget, index
        self.data = ProxyData(settings.data, settings.task, seed=settings.seed, max_frames=settings.proxy.max_frames)
        Path(settings.out).mkdir(parents=True, exist_ok=True)
        self.latency = _latency_source(settings, rounds=settings.latency_rounds, lock=Path(settings.out) / ".timing.lock",
                                       num_classes=self.data.task.num_classes, anchor=anchor)

    def evaluate(self, arch, label: str, study=None, always_train: bool = False) -> dict:
        from compress.nas.objective import evaluate_arch

        s = self.settings
        bar = _bar(s.progress, s.proxy.epochs + 1, f"{label} [w{self.index}]", self.index + 1)
        try:
            def step(text):
                bar.update(1)
                bar.set_postfix_str(text)

            rec = evaluate_arch(arch, self.data, self.latency, (self.budget["budget_ms"], self.budget["max_mb"]),
                                s.proxy, _stop_rule(study, s.proxy) if study is not None else None, step, always_train)
        finally:
            bar.close()
        rec["worker"] = self.index
        acc = "not trained" if rec["accuracy"] is None else f"{rec['metric']} {rec['accuracy']:.3f}"
        _say(s.progress, f"{label}: {arch.key()}: {acc}, {rec['latency_ms']:.3g} ms ({rec['latency_how']}), "
                         f"{rec['memory_mb']:.3g} MB, {rec['status']}, {rec['seconds']:.0f} s")
        return rec

    def objective(self, study):
        def run(trial):
            arch = self.settings.space.suggest(trial)
            ref, seed = trial.user_attrs.get("reference"), trial.user_attrs.get("seed")
            seen = _evaluated(study, arch.key())
            if seen is not None and not ref:      # NSGA-II proposed a net the study has scored: reuse it
                rec = {**seen, "duplicate_of": seen["number"], "worker": self.index, "seconds": 0.0}
                _say(self.settings.progress, f"trial {trial.number}: {arch.key()}: the net of trial {seen['number']}, reused")
            else:
                rec = self.evaluate(arch, f"trial {trial.number}" + (f" ({ref or seed})" if ref or seed else ""),
                                    study, always_train=bool(ref))
            rec["number"] = trial.number
            if ref:
                rec["reference"] = ref
            if seed:
                rec["seed"] = seed
            trial.set_user_attr("record", rec)
            over = [rec["latency_ms"] - self.budget["budget_ms"], rec["memory_mb"] - self.budget["max_mb"]]
            trial.set_user_attr("constraints", over)
            if _core_constraints():
                trial.set_constraint("latency_ms", over[0])
                trial.set_constraint("memory_mb", over[1])
            if rec["accuracy"] is not None and rec["val_figures"] and "duplicate_of" not in rec:
                trial.set_user_attr("epoch1", rec["val_figures"][0])
            return rec["accuracy"] or 0.0, rec["latency_ms"], rec["memory_mb"]
        return run


def _evaluated(study, key: str) -> dict | None:
    """The record of a finished trial of the same architecture, if any (the first one)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = t.user_attrs.get("record")
        if rec and rec["arch"]["key"] == key and "duplicate_of" not in rec:
            return rec
    return None


def _stop_rule(study, proxy: ProxySettings):
    """Early stopping of poor trials, read from the shared study (see `compress.nas.objective`)."""
    import statistics

    from optuna.trial import TrialState

    def should_stop(figure: float) -> bool:
        peers = [t.user_attrs["epoch1"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if "epoch1" in t.user_attrs]
        return len(peers) >= proxy.stop_after and figure < proxy.stop_ratio * statistics.median(peers)
    return should_stop


def _trial_count(study) -> int:
    return len(study.get_trials(deepcopy=False))


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))


def run_worker(settings: NasSettings, budget: dict, index: int, on_trial=None) -> int:
    """A worker process: trials from the shared study until it holds `settings.trials`. Returns how many it
    ran; `on_trial(study)` after each (the progress bar, when the worker runs in this process)."""
    from optuna.study import MaxTrialsCallback

    pin_threads(settings)
    study = open_study(settings, budget, index)
    if _trial_count(study) >= settings.trials:
        return 0
    worker = _Worker(settings, budget, index, study.user_attrs.get("anchor"))
    before = sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("record", {}).get("worker") == index)
    study.optimize(worker.objective(study), n_trials=settings.trials,
                   callbacks=[MaxTrialsCallback(settings.trials, states=None),
                              *([lambda st, _t: on_trial(st)] if on_trial else [])], catch=())
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get("record", {}).get("worker") == index) - before


def run_reference(settings: NasSettings, budget: dict, name: str, index: int = 0, anchor: dict | None = None) -> dict:
    """A reference net outside the search space (ResNet34), measured and proxy-trained like a trial."""
    pin_threads(settings)
    rec = _Worker(settings, budget, index, anchor).evaluate(REFERENCES[name].at(settings.input_size), name, always_train=True)
    rec["reference"] = name
    return rec


# --- progress ----------------------------------------------------------------------------------------
def _say(progress: bool, text: str) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(f"nas {text}", file=sys.stderr)


def _bar(progress: bool, total: int, desc: str, position: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, position=position, leave=False, file=sys.stderr,
                disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)


# --- the search --------------------------------------------------------------------------------------
def resolve_budget(settings: NasSettings, anchor: dict | None = None) -> dict:
    """The latency and memory budget: given, derived from the target, or (`budget_ratio`) a fraction of
    ResNet8's latency at the input size on the target, got as every candidate's is: the anchor's quiet
    latency when measured here (`anchor`), else the device table's entry or the estimate."""
    from compress.nas.costs import ANCHOR, default_budget
    from targets import get_target

    d = default_budget(get_target(settings.target))
    if settings.budget_ratio:
        ref_ms, how = _reference_ms(settings, anchor)
        ms = round(settings.budget_ratio * ref_ms, 4)
        ms_how = (f"{settings.budget_ratio:g} x {ANCHOR} at {settings.input_size[0]}x{settings.input_size[1]} "
                  f"({ref_ms:g} ms, {how}; --budget-ratio)")
    else:
        ms, ms_how = (settings.budget_ms, "given (--budget-ms)") if settings.budget_ms else (d["budget_ms"], d["ms_how"])
    return {"budget_ms": ms, "max_mb": settings.max_mb or d["max_mb"],
            "how": f"latency {ms_how}; memory {'given (--max-mb)' if settings.max_mb else d['mb_how']}"}


def _latency_source(settings: NasSettings, num_classes: int | None = None, **kwargs):
    """The search's `LatencySource`: its target, its device table if any, the task's classes; `kwargs`
    (rounds, lock, anchor) as `LatencySource` takes them."""
    from compress.nas.costs import LatencySource, load_table
    from edge.core.tasks import get_task
    from targets import get_target

    table = load_table(settings.latency_table) if settings.latency_table else None
    return LatencySource(get_target(settings.target), table,
                         num_classes=num_classes or get_task(settings.task).num_classes, **kwargs)


def _reference_ms(settings: NasSettings, anchor: dict | None) -> tuple[float, str]:
    from compress.nas.costs import ANCHOR
    from compress.nas.space import REFERENCES

    if anchor is not None:
        return anchor["ms"], "measured here"
    return _latency_source(settings).ms(REFERENCES[ANCHOR].at(settings.input_size))


def _anchored(settings: NasSettings) -> bool:
    """Candidates are timed here beside the anchor (the `cpu` target without a device table)."""
    from targets import get_target

    return not settings.latency_table and get_target(settings.target).kind == "cpu"


def _check_possible(settings: NasSettings, budget: dict) -> dict:
    """Refuse a budget nothing in the space can meet, before any training: the smallest net's costs."""
    import torch

    from compress.nas.costs import model_costs
    from edge.core.tasks import get_task
    from edge.ml.models import create_model

    arch = settings.space.smallest()
    torch.manual_seed(0)
    model = create_model("resnet_nas", get_task(settings.task), input_size=arch.input_size, **arch.model_kwargs())
    ms, how = _latency_source(settings, rounds=settings.latency_rounds).ms(arch, model)
    costs = model_costs(model)
    if ms > budget["budget_ms"] or costs["memory_mb"] > budget["max_mb"]:
        raise UnsupportedError(
            f"nothing in the search space fits {budget['budget_ms']:g} ms and {budget['max_mb']:g} MB on "
            f"{settings.target}: the smallest net ({arch.key()}) takes {ms:.3g} ms ({how}) and "
            f"{costs['memory_mb']:.3g} MB; raise --budget-ms/--max-mb or shrink the space (--resolutions)")
    return {"arch": arch.to_dict(), "latency_ms": ms, "latency_how": how, **costs}


def search(settings: NasSettings) -> dict:
    """Run the search to `settings.trials` trials, write the report to `settings.out`, train the best net
    under budget (`final_epochs`) and return the report. UnsupportedError (after the report is written)
    when no trained candidate fits the budget."""
    from edge.ml.data import detect_format

    t0 = time.perf_counter()
    # every check that can fail comes before anything is written (no study, no folder for a bad request)
    detect_format(settings.data)                                  # a mistyped --data: one line, now
    if settings.latency_table:
        from compress.nas.costs import load_table

        load_table(settings.latency_table)                        # a bad table: one line, now
    if settings.storage:
        open_storage(settings.storage)                            # a storage that cannot be opened: one line
    anchor = _quiet_anchor(settings) if settings.budget_ratio and _anchored(settings) else None
    budget = resolve_budget(settings, anchor)
    smallest = _check_possible(settings, budget)                  # an impossible budget: one line
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    study = open_study(settings, budget, create=True)
    stored = _measure_anchor(settings, study, anchor)
    if settings.budget_ratio and stored != anchor:                # a resumed study keeps its anchor, so its budget
        budget = resolve_budget(settings, stored)
    _say(settings.progress, f"{settings.name}: {settings.trials} trials, {settings.workers} worker(s), budget "
                            f"{budget['budget_ms']:g} ms / {budget['max_mb']:g} MB on {settings.target} "
                            f"({budget['how']}), storage {storage_url(settings)}")
    outside = _enqueue_references(study, settings)
    done = {name: rec for name, rec in _stored_references(study).items() if name in outside}
    todo = [n for n in outside if n not in done]
    done.update(_run_all(settings, budget, study, todo))
    for name, rec in done.items():
        study.set_user_attr(f"reference:{name}", rec)
    return _finish(settings, budget, study, smallest, time.perf_counter() - t0)


def _quiet_anchor(settings: NasSettings, lock=None) -> dict:
    from compress.nas.costs import anchor_model, quiet_ms
    from edge.core.tasks import get_task

    net = anchor_model(settings.input_size, get_task(settings.task).num_classes)
    return {"input_size": list(settings.input_size), "ms": quiet_ms(net, lock=lock)}


def _measure_anchor(settings: NasSettings, study, measured: dict | None = None) -> dict | None:
    """Time the anchor net quietly once per study (`compress.nas.costs`: candidates are timed beside
    it), before any worker starts, unless `measured` already; a resumed study, or a worker on another
    machine, keeps the first figure. Returns the study's anchor (None: candidates are not timed here)."""
    from compress.nas.costs import ANCHOR

    if not _anchored(settings):
        return None
    if "anchor" not in study.user_attrs:
        anchor = measured or _quiet_anchor(settings, lock=Path(settings.out) / ".timing.lock")
        study.set_user_attr("anchor", anchor)
        _say(settings.progress, f"anchor: {ANCHOR} at {settings.input_size[0]}x{settings.input_size[1]} takes "
                                f"{anchor['ms']:g} ms here; each candidate is timed beside it")
    return study.user_attrs["anchor"]


def _enqueue_references(study, settings: NasSettings) -> list[str]:
    """Queue the references the space holds as the study's first trials, then the seeds: each reference
    with its widths scaled by `settings.scales` (ResNet8 x0.5 is 32/64/128) at every input size of the
    space, ordinary candidates that start the search from the nets the FPUS23 paper's search found,
    scaled in width and resolution, not only from random ones (on the phantom's plane task ResNet8 at
    x0.5 read 0.907, 0.876, 0.888 unseen for seeds 0-2 at 64x64 and 0.932, 0.898, 0.920 at 80x80, where
    ResNet8 read 0.933, 0.894, 0.898). At most half the trials (rounded up) are queued, in that order,
    so the search still explores. Returns the names of the references outside the space."""
    outside, keys = [], set()
    queued = {t.user_attrs.get("reference") or t.user_attrs.get("seed") for t in study.get_trials(deepcopy=False)}
    room = (settings.trials + 1) // 2 - len(queued - {None})
    queue = [(name, REFERENCES[name].at(settings.input_size), {"reference": name}) for name in settings.references]
    queue += [(label, settings.space.scaled(ref.at(size), f), {"seed": label})
              for name, ref, _ in list(queue) for f in settings.scales for size in settings.space.resolutions
              for label in [f"{name} x{f:g} at {size[0]}x{size[1]}"]]
    for label, arch, attrs in queue:
        params = settings.space.params_of(arch)
        if params is None and "reference" in attrs:
            outside.append(label)
        if params is None or arch.key() in keys:
            continue
        keys.add(arch.key())
        if label not in queued and room > 0:
            study.enqueue_trial(params, user_attrs=attrs)
            room -= 1
    return outside


def _stored_references(study) -> dict:
    return {k.split(":", 1)[1]: v for k, v in study.user_attrs.items() if k.startswith("reference:")}


def _run_all(settings: NasSettings, budget: dict, study, references: list[str]) -> dict:
    """The references outside the space and the workers' trials: in this process for one worker,
    else in `workers` spawned processes. Returns the references' records."""
    from tqdm import tqdm

    overall = tqdm(total=settings.trials, initial=min(settings.trials, _finished(study)), desc="nas trials",
                   position=0, file=sys.stderr, disable=not (settings.progress and sys.stderr.isatty()))
    try:
        anchor = study.user_attrs.get("anchor")
        if settings.workers == 1:
            refs = {name: run_reference(settings, budget, name, 0, anchor) for name in references}
            def advance(st):
                overall.n = min(settings.trials, _finished(st))
                overall.refresh()

            run_worker(settings, budget, 0, on_trial=advance)
            return refs
        import concurrent.futures as cf

        one = one_thread(settings)
        with spawn_pool(settings.workers) as pool:
            refs = {name: pool.submit(run_reference, one, budget, name, i % settings.workers, anchor)
                    for i, name in enumerate(references)}
            workers = [pool.submit(run_worker, one, budget, i) for i in range(settings.workers)]
            pending = set(refs.values()) | set(workers)
            while pending:
                finished, pending = cf.wait(pending, timeout=2.0, return_when=cf.FIRST_EXCEPTION)
                overall.n = min(settings.trials, _finished(study))
                overall.refresh()
                for f in finished:
                    f.result()                   # a worker's error (EdgekitError or a bug) surfaces here
            return {name: f.result() for name, f in refs.items()}
    finally:
        overall.n = min(settings.trials, _finished(study))
        overall.close()


def _records(study) -> list[dict]:
    from optuna.trial import TrialState

    return [t.user_attrs["record"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "record" in t.user_attrs]


def _finish(settings: NasSettings, budget: dict, study, smallest: dict, elapsed: float) -> dict:
    from compress.nas.costs import cross_validate
    from compress.nas.report import pareto_front, top_under_budget, write_report
    from compress.nas.space import Arch
    from edge.core.tasks import get_task

    records = _records(study)
    refs = {r["reference"]: r for r in records if r.get("reference")}
    refs.update(_stored_references(study))
    source = _latency_source(settings, anchor=study.user_attrs.get("anchor"))
    latency = source.to_dict()
    measured = [r for r in [*records, *refs.values()] if r["latency_how"] == "measured"]
    if measured:
        uniq = {r["arch"]["key"]: r for r in measured}
        latency["model_error"] = {**cross_validate([Arch.from_dict(r["arch"]) for r in uniq.values()],
                                                   [r["latency_ms"] for r in uniq.values()],
                                                   num_classes=get_task(settings.task).num_classes),
                                  "against": "this search's measured candidates"}
    elif source.mode == "table":
        latency["model_error"] = {**latency["table"]["model_error"], "against": "the device table's nets"}
    elif source.mode == "estimate":
        latency["model_error"] = {"n": 0, "median_abs_pct": None,
                                  "note": "nominal figures: no measurement to compare with; measure a device table"}
    top = top_under_budget(records, budget, settings.finalists)
    best = top[0] if top else None
    report = {
        "task": settings.task, "target": settings.target, "data": str(settings.data), "budget": budget,
        "latency": latency, "space": settings.space.to_dict(), "reference_input": list(settings.input_size),
        "proxy": settings.proxy.to_dict(),
        "study": {"name": settings.name, "storage": storage_url(settings), "sampler": "NSGAIISampler",
                  "population": settings.population_or_default, "directions": list(DIRECTIONS),
                  "constraints": ["latency_ms - budget_ms", "memory_mb - max_mb"], "trials": len(records),
                  "asked": settings.trials, "workers": settings.workers},
        "smallest": smallest, "trials": sorted(records, key=lambda r: r["number"]),
        "front": [r["number"] for r in pareto_front(records)], "references": refs,
        "best": best, "final": None, "finalists": [], "search_seconds": round(elapsed, 1),
    }
    if top and settings.final_epochs:
        from compress.nas.finalists import choose

        t0 = time.perf_counter()
        report["finalists"], report["final"], report["selection"] = choose(settings, top,
                                                                           lambda text: _say(settings.progress, text))
        report["finalists_seconds"] = round(time.perf_counter() - t0, 1)
        report["best"] = next(r for r in top if r["arch"]["key"] == report["final"]["arch"]["key"])
    write_report(report, settings.out)
    if best is None:
        trained = [r for r in records if r["accuracy"] is not None]
        fastest = min(records, key=lambda r: r["latency_ms"]) if records else smallest
        raise UnsupportedError(
            f"no candidate of {len(records)} ({len(trained)} trained) fits {budget['budget_ms']:g} ms and "
            f"{budget['max_mb']:g} MB on {settings.target}; the fastest found takes {fastest['latency_ms']:.3g} ms "
            f"and {fastest['memory_mb']:.3g} MB ({fastest['arch']['key']}); the front is in {settings.out}/nas.md")
    return report
