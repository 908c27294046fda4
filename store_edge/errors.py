"""Errors a person can act on: which file, which field, what is wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldProblem:
    """One problem in a config file: `path` is the field path (for example `gondolas[2].shelves[0].id`)."""

    path: str
    problem: str


def format_field_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic location tuple as `a.b[3].c`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += part if not out else f".{part}"
    return out or "(top level)"


class ConfigError(Exception):
    """A config file (store layout, scenario) that cannot be used. Lists every problem found."""

    def __init__(self, file: str | Path, problems: Iterable[FieldProblem]) -> None:
        self.file = str(file)
        self.problems = list(problems)
        lines = [f"{self.file}: {p.path}: {p.problem}" for p in self.problems]
        super().__init__("invalid config file\n" + "\n".join(lines))

    @classmethod
    def from_validation_error(cls, file: str | Path, err: ValidationError) -> ConfigError:
        problems = []
        for e in err.errors(include_url=False):
            # pydantic puts union/tag names into loc; keep only the user's field names and indices.
            loc = [p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
            problems.append(FieldProblem(format_field_path(loc), e["msg"].removeprefix("Value error, ")))
        return cls(file, problems)
