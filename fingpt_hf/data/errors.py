"""Data errors: each names the file and line/row at fault and what was expected."""

from __future__ import annotations

from fingpt_hf.errors import FinGPTError


class DataFormatError(FinGPTError):
    """A data file does not have the expected format."""

    def __init__(self, path: object, where: str | None, problem: str):
        location = f"{path}" + (f", {where}" if where else "")
        super().__init__(f"{location}: {problem}")
        self.path, self.where, self.problem = path, where, problem


class MissingSplitError(FinGPTError):
    """A split that the local mirror does not hold (NWGI train)."""
