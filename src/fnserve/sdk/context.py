"""What an endpoint may ask to be told about the call it serves, through reserved parameters.

`_job: fs.JobContext | None`: the queued job it runs (None for a synchronous call), so work can be
made idempotent across attempts. `_assets: dict[str, Path]`: the assets named by the call, as
local files. `_api`: the service's API description.
"""

from __future__ import annotations

from dataclasses import dataclass

JOB_PARAMETER = "_job"
ASSETS_PARAMETER = "_assets"


@dataclass(frozen=True)
class JobContext:
    """The queued job an endpoint runs: its id, and which attempt this is (1 for the first)."""

    id: str
    attempt: int
    max_attempts: int

    @property
    def is_retry(self) -> bool:
        return self.attempt > 1
