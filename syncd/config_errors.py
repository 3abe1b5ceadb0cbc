"""The config's error type, and a collector so that one load reports every problem."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class ConfigError(Exception):
    """A config problem: ``file: key: message``.

    One load can find several: :attr:`problems` lists them all (``str()`` gives one line each);
    ``file``, ``key`` and ``message`` are those of the first.
    """

    def __init__(self, file: Path | str | None, key: str | None, message: str) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.message = message
        self._problems: tuple[ConfigError, ...] = ()
        super().__init__(self.line())

    @classmethod
    def of(cls, problems: Sequence[ConfigError]) -> ConfigError:
        """One error standing for all of ``problems`` (at least one)."""
        flat = [p for problem in problems for p in problem.problems]
        if len(flat) == 1:
            return flat[0]
        first = flat[0]
        combined = cls(first.file, first.key, first.message)
        combined._problems = tuple(flat)
        combined.args = (str(combined),)
        return combined

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        return self._problems or (self,)

    def line(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.message])

    def __str__(self) -> str:
        return "\n".join(problem.line() for problem in self.problems)


class Problems:
    """Collects :class:`ConfigError` s: ``with problems.check(): ...`` records what the block
    raised and carries on after it."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:
            self.errors.extend(exc.problems)

    def add(self, error: ConfigError) -> None:
        self.errors.extend(error.problems)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_any(self) -> None:
        if self.errors:
            raise ConfigError.of(self.errors)
