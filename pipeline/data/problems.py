"""Bad samples met while reading shards: skipped and counted, the first few reported."""

from __future__ import annotations

import sys

REPORTED = 5  # lines per reader; past them, problems are only counted (and logged as a number)


class BadRecord(Exception):
    """A stored record that cannot give samples: `count` of them are lost."""

    def __init__(self, why: str, count: int = 1):
        super().__init__(why)
        self.why, self.count = why, count


class Problems:
    def __init__(self) -> None:
        self.skipped = 0
        self.reported = 0
        self.last = ""  # the latest reason

    def skip(self, count: int, where: str, why: str) -> None:
        self.skipped += count
        self.last = why
        if self.reported < REPORTED:
            self.reported += 1
            more = "; further problems are counted (data/skipped), not printed"
            tail = more if self.reported == REPORTED else ""
            print(f"data: skipped {count} sample(s) of {where}: {why}{tail}", file=sys.stderr)
