"""The search space around the FPUS23 nets: stem, stages, blocks and widths per stage, input size.

An architecture (`Arch`) is plain data: `Arch.model_kwargs()` are the `resnet_nas` zoo family's
`create_model` overrides (`edge.ml.models.resnet_nas`), recorded in a checkpoint's `model.kwargs`, and
the input size is the zoo's own `input_size`::

    >>> space = SearchSpace(resolutions=((64, 64),))
    >>> a = REFERENCES["resnet8"].at((64, 64))
    >>> a.key(), space.contains(a)
    ('imagenet-b1.1.1-w64.128.256-64x64', True)
    >>> space.scaled(a, 0.5).key()
    'imagenet-b1.1.1-w32.64.128-64x64'

The encoding Optuna sees is fixed-length (`stages`, `stem`, `input`, and `b{i}`/`w{i}` for every stage
up to the most), so NSGA-II's crossover and mutation work on every parameter; a trial with fewer stages
ignores the rest. Widths come from a ladder of multiples of 8 (`WIDTH_LADDER`), roughly geometric, so
narrow nets are as likely as wide ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edge.core.errors import BadInputError
from edge.ml.models.resnet_nas import MAX_BLOCKS, MAX_STAGES, MAX_WIDTH, RESNET8, RESNET10, RESNET34, STEMS, check_spec

WIDTH_LADDER = (8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class Arch:
    """One candidate network: a `resnet_nas` spec at an input size (height, width)."""

    stem: str
    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    input_size: tuple[int, int]

    def __post_init__(self):
        blocks, widths, stem = check_spec(list(self.blocks), list(self.widths), self.stem)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    def model_kwargs(self) -> dict:
        """The `resnet_nas` overrides (plain lists and a string: what a checkpoint records)."""
        return {"blocks": list(self.blocks), "widths": list(self.widths), "stem": self.stem}

    def key(self) -> str:
        """A stable name: stem, blocks, widths and input size (latency tables are keyed by it)."""
        return (f"{self.stem}-b{'.'.join(map(str, self.blocks))}-w{'.'.join(map(str, self.widths))}"
                f"-{self.input_size[0]}x{self.input_size[1]}")

    def at(self, input_size) -> "Arch":
        return Arch(self.stem, self.blocks, self.widths, tuple(input_size))

    def to_dict(self) -> dict:
        return {**self.model_kwargs(), "input_size": list(self.input_size), "key": self.key()}

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        try:
            return cls(d["stem"], tuple(d["blocks"]), tuple(d["widths"]), tuple(d["input_size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"not an architecture spec ({type(exc).__name__}: {exc}): {str(d)[:80]}") from None


# The hand-written nets, measured the same way as every candidate (at the search's reference input size).
REFERENCES = {name: Arch(stem, blocks, widths, (64, 64)) for name, (blocks, widths, stem) in
              (("resnet8", RESNET8), ("resnet10", RESNET10), ("resnet34", RESNET34))}


def _span(v, low: int, high: int, what: str) -> tuple[int, int]:
    lo, hi = (v, v) if isinstance(v, int) else tuple(v)
    if not (low <= lo <= hi <= high):
        raise BadInputError(f"{what} {lo}..{hi} is not a range within {low}..{high}")
    return int(lo), int(hi)


@dataclass(frozen=True)
class SearchSpace:
    """What the search may choose. Defaults: 2..4 stages of 1..2 blocks, widths 8..256, every stem."""

    stages: tuple[int, int] = (2, 4)
    blocks: tuple[int, int] = (1, 2)
    widths: tuple[int, int] = (8, 256)
    stems: tuple[str, ...] = tuple(STEMS)
    resolutions: tuple[tuple[int, int], ...] = ((64, 64),)
    ladder: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self):
        object.__setattr__(self, "stages", _span(self.stages, 1, MAX_STAGES, "stages"))
        object.__setattr__(self, "blocks", _span(self.blocks, 1, MAX_BLOCKS, "blocks per stage"))
        object.__setattr__(self, "widths", _span(self.widths, 8, MAX_WIDTH, "widths"))
        bad = [s for s in self.stems if s not in STEMS]
        if bad or not self.stems:
            raise BadInputError(f"stems {', '.join(bad) or '(none)'}: expected some of {', '.join(STEMS)}")
        res = tuple(tuple(int(v) for v in r) for r in self.resolutions)
        if not res or any(len(r) != 2 or min(r) < 16 for r in res):
            raise BadInputError(f"resolutions {res}: expected (height, width) pairs of at least 16")
        object.__setattr__(self, "resolutions", tuple(sorted(set(res))))
        object.__setattr__(self, "stems", tuple(dict.fromkeys(self.stems)))
        ladder = tuple(w for w in WIDTH_LADDER if self.widths[0] <= w <= self.widths[1])
        if not ladder:
            raise BadInputError(f"widths {self.widths[0]}..{self.widths[1]} hold none of {WIDTH_LADDER}")
        object.__setattr__(self, "ladder", ladder)

    # --- Optuna ------------------------------------------------------------------------------------
    def suggest(self, trial) -> Arch:
        """The architecture an Optuna trial proposes (every parameter suggested, in a fixed order)."""
        n = trial.suggest_int("stages", *self.stages)
        stem = trial.suggest_categorical("stem", list(self.stems))
        res = trial.suggest_categorical("input", [f"{h}x{w}" for h, w in self.resolutions])
        blocks = [trial.suggest_int(f"b{i}", *self.blocks) for i in range(self.stages[1])]
        widths = [trial.suggest_categorical(f"w{i}", list(self.ladder)) for i in range(self.stages[1])]
        h, w = (int(v) for v in res.split("x"))
        return Arch(stem, tuple(blocks[:n]), tuple(widths[:n]), (h, w))

    def params_of(self, arch: Arch) -> dict | None:
        """Optuna parameters that give `arch` (for enqueueing a reference), or None if outside the space."""
        if not self.contains(arch):
            return None
        params = {"stages": len(arch.blocks), "stem": arch.stem, "input": f"{arch.input_size[0]}x{arch.input_size[1]}"}
        for i, (b, w) in enumerate(zip(arch.blocks, arch.widths)):
            params[f"b{i}"], params[f"w{i}"] = b, w
        return params

    def scaled(self, arch: Arch, factor: float) -> Arch:
        """`arch` with every width times `factor`, each rounded to the nearest width on the ladder:
        the seeds the study starts from (ResNet8 at x0.5 is 32/64/128)."""
        widths = tuple(min(self.ladder, key=lambda w: (abs(w - v * factor), w)) for v in arch.widths)
        return Arch(arch.stem, arch.blocks, widths, arch.input_size)

    def contains(self, arch: Arch) -> bool:
        return (self.stages[0] <= len(arch.blocks) <= self.stages[1] and arch.stem in self.stems
                and all(self.blocks[0] <= b <= self.blocks[1] for b in arch.blocks)
                and all(w in self.ladder for w in arch.widths) and arch.input_size in self.resolutions)

    # --- without Optuna ----------------------------------------------------------------------------
    def sample(self, rng) -> Arch:
        """A uniformly random architecture (numpy Generator `rng`): latency calibration, device tables."""
        n = int(rng.integers(self.stages[0], self.stages[1] + 1))
        return Arch(str(rng.choice(self.stems)), tuple(int(rng.integers(self.blocks[0], self.blocks[1] + 1)) for _ in range(n)),
                    tuple(int(rng.choice(self.ladder)) for _ in range(n)),
                    self.resolutions[int(rng.integers(len(self.resolutions)))])

    def smallest(self) -> Arch:
        """The cheapest net the space holds: fewest stages, one block each, narrowest, lightest stem, smallest input."""
        stem = min(self.stems, key=lambda s: (STEMS[s][0] ** 2 * (1 if STEMS[s][1] else 4)))
        n = self.stages[0]
        return Arch(stem, (1,) * n, (self.ladder[0],) * n, min(self.resolutions, key=lambda r: r[0] * r[1]))

    def to_dict(self) -> dict:
        return {"stages": list(self.stages), "blocks": list(self.blocks), "widths": list(self.widths),
                "width_ladder": list(self.ladder), "stems": list(self.stems),
                "resolutions": [list(r) for r in self.resolutions]}
