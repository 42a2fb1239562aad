"""Budgets of compute time: this process's CPU time divided by its torch threads, in minutes,
so a budget of 5 is about 5 minutes on an idle machine with that many cores. Other load moves
it little with one thread; with more, threads that wait for each other spin, and that counts,
so budgets are for machines the run has to itself. `train.budget_minutes` (and the
quality bench's baseline) checkpoint as each budget passes; the spent time is checkpointed,
so a resumed run goes on counting where it stopped."""

from __future__ import annotations

import time

import torch

CHECK_EVERY = 10  # steps between looks at the clock: all ranks decide at the same steps


class CpuBudget:
    def __init__(self, minutes: list[float], spent: dict | None = None):
        """`spent`: a checkpoint's counters (the `state()` keys), to go on counting."""
        self.marks = sorted(minutes)
        spent = spent or {}
        keys = ("budget_minutes", "budget_wall_seconds")
        self.before = {key: spent.get(key, 0.0) for key in keys}
        self.passed_marks = [m for m in self.marks if m <= self.before["budget_minutes"]]
        self.threads = torch.get_num_threads()
        self.cpu_start, self.wall_start = time.process_time(), time.perf_counter()

    def minutes(self) -> float:
        cpu = time.process_time() - self.cpu_start
        return self.before["budget_minutes"] + cpu / 60 / self.threads

    def state(self) -> dict[str, float]:
        """Counters for a checkpoint, so a resumed run goes on counting."""
        wall = time.perf_counter() - self.wall_start
        return {"budget_minutes": self.minutes(),
                "budget_wall_seconds": self.before["budget_wall_seconds"] + wall}  # fmt: skip

    @property
    def exhausted(self) -> bool:
        return bool(self.marks) and len(self.passed_marks) == len(self.marks)

    def passed(self, step: int, reduce=None) -> float | None:
        """The budget first passed at this step, if any (looked at every CHECK_EVERY steps;
        `reduce` takes the largest of the ranks' minutes, so all ranks agree)."""
        if not self.marks or self.exhausted or step % CHECK_EVERY:
            return None
        spent = self.minutes()
        if reduce is not None:
            spent = reduce(spent)
        mark = self.marks[len(self.passed_marks)]
        if spent < mark:
            return None
        self.passed_marks.append(mark)
        return mark

    def record(self) -> dict[str, float]:
        """What the run logs as a budget passes."""
        state = self.state()
        return {"budget/cpu_minutes": state["budget_minutes"], "budget/threads": self.threads,
                "budget/wall_minutes": state["budget_wall_seconds"] / 60}  # fmt: skip

    def describe(self) -> str:
        state = self.state()
        return (
            f"{state['budget_minutes']:.2f} CPU min per thread ({self.threads} threads), "
            f"{state['budget_wall_seconds'] / 60:.2f} min wall"
        )
