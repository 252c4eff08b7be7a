"""The runner's progress lines: the notebooks' streamed output echoed, its runs counted, the time left.

The runs are counted from the notebooks' event lines (:mod:`lbw_utils.runs.events`, JSON), never from prose."""

from __future__ import annotations

import time
from collections import Counter

from lbw_utils.runs import events
from lbw_utils.runner.profiles import Step


class Progress:
    """Echoes the notebooks' streamed output and keeps count of the runs it reports.

    ``experiments.run`` prints a ``done`` event when it trains a run and a ``reused`` event when it
    reads a finished record back; ``run_study`` announces a ``plan`` event (N runs). Event lines are
    not shown; in a process whose own events are read (a fan-out's shard, :func:`lbw_utils.runs.events.enabled`)
    they are passed on unchanged, for the process that watches it. After each run this handler prints
    one overall line: run k of N in the whole profile, the step and its runs, runs
    trained and reused, elapsed time, and the time left.

    N and the time left come from what is known: a step's runs as its notebook announces them and,
    for the steps still to come, the run counts and wall times of this profile's earlier runs
    (``timings``: step name -> ``{"parameters", "runs", "seconds"}``, used only where the step's
    parameters are unchanged). The first run of a profile knows only the steps seen so far, and says
    so ("of at least N").
    """

    def __init__(self, steps: list[Step], timings: dict | None = None, log=print, *,
                 trained_by_workers: list[str] | None = None):
        self.steps, self.log = steps, log
        # an entry written before parameters were recorded is trusted by its step name alone
        self.known = {step.name: dict(timings[step.name]) for step in steps if step.name in (timings or {})
                      and timings[step.name].get("parameters", step.parameters) == step.parameters}
        self.started = time.perf_counter()
        self.trained = self.reused = 0
        # Runs that parallel workers trained just before this pass ("dataset / method / seed k", see
        # events.run_identity): this pass reads them back, and counts them as trained (by the workers), not reused.
        self.workers_trained = Counter(trained_by_workers or ())
        self.trained_by_workers = 0
        self.trained_seconds = 0.0
        self.finished_runs: dict[int, int] = {}
        self.step_index, self.step_started, self.step_planned, self.step_done = 0, self.started, 0, 0
        self.step_trained_seconds, self.step_trained, self.step_reused = 0.0, 0, 0
        self.forward_events = events.enabled()

    def start_step(self, index: int) -> None:
        self.step_index, self.step_started = index, time.perf_counter()
        self.step_planned = self.step_done = self.step_trained = self.step_reused = 0
        self.step_trained_seconds = 0.0

    def finish_step(self, seconds: float) -> dict:
        """Close the current step; return its timing entry (what a later run of the profile estimates from)."""
        step = self.steps[self.step_index]
        self.finished_runs[self.step_index] = self.step_done
        entry = {"parameters": step.parameters, "runs": self.step_done, "seconds": round(seconds, 1)}
        if self.step_reused and step.name in self.known:
            # reused records take no time: keep the wall time of the last run that trained them
            entry["seconds"] = self.known[step.name]["seconds"]
        return entry

    def line(self, line: str) -> None:
        """One line a notebook printed (to stdout or stderr): an event is counted, another line echoed, indented."""
        event = events.parse(line)
        if event is not None:
            if self.forward_events:
                self.log(line.strip())
            self._count(event)
        elif line.strip():
            self.log(f"    {line}")

    def _count(self, event: dict) -> None:
        if event["event"] == "plan":
            self.step_planned += int(event["runs"])
            return
        if event["event"] not in ("done", "reused"):
            return
        self.step_done += 1
        if event["event"] == "done":
            seconds = float(event["seconds"])
            self.trained += 1
            self.trained_seconds += seconds
            self.step_trained += 1
            self.step_trained_seconds += seconds
        else:
            identity = event["run"]
            if self.workers_trained[identity] > 0:
                self.workers_trained[identity] -= 1
                self.trained_by_workers += 1
            else:
                self.reused += 1
            self.step_reused += 1
        self.log(self.overall_line())

    def counts_text(self) -> str:
        """``N trained, M reused``, with the runs the parallel workers trained among the N, if any."""
        by_workers = f" ({self.trained_by_workers} by the parallel workers)" if self.trained_by_workers else ""
        return f"{self.trained + self.trained_by_workers} trained{by_workers}, {self.reused} reused"

    def expected_runs(self, index: int) -> int | None:
        """The runs of step ``index``: counted if finished, else announced or known from an earlier run."""
        if index in self.finished_runs:
            return self.finished_runs[index]
        known = self.known.get(self.steps[index].name, {}).get("runs")
        if index == self.step_index:
            return max(self.step_planned, self.step_done, known or 0) if known is not None else None
        return known

    def overall_line(self) -> str:
        now = time.perf_counter()
        step = self.steps[self.step_index]
        counts = [self.expected_runs(i) for i in range(len(self.steps))]
        done = self.trained + self.reused + self.trained_by_workers
        if None in counts:
            # the current step's announced runs count even while its total is not known yet
            at_least = sum(c for c in counts if c is not None) + (
                max(self.step_planned, self.step_done) if counts[self.step_index] is None else 0)
            total = f"at least {max(at_least, done)}"
        else:
            total = str(sum(counts))
        step_total = counts[self.step_index] if counts[self.step_index] is not None else (self.step_planned or "?")
        parts = [f"[progress] step {self.step_index + 1}/{len(self.steps)} ({step.name}): run {self.step_done} of "
                 f"{step_total}", f"all steps: run {done} of {total}",
                 self.counts_text(), f"elapsed {format_minutes(now - self.started)}"]
        this_step, later, untimed = self.seconds_left(now, counts)
        if this_step is None and self.trained_by_workers:
            parts.append("time left: the workers' runs are read back, then the tables and figures computed")
        elif this_step is None:
            parts.append("time left: estimated after the first trained run")
        elif untimed:
            # a first run: what the later steps take is known only once they have run
            parts.append(f"this step about {format_minutes(this_step)} left, {untimed} later step(s) not timed yet")
        else:
            parts.append(f"about {format_minutes(this_step + later)} left")
        return " | ".join(parts)

    def seconds_left(self, now: float, counts: list[int | None]) -> tuple[float | None, float, int]:
        """(seconds left in this step, or None when nothing is known to estimate from; seconds of the later
        steps that are known; how many later steps are not)."""
        per_run = (self.step_trained_seconds / self.step_trained if self.step_trained
                   else self.trained_seconds / self.trained if self.trained else None)
        step = self.steps[self.step_index]
        expected = counts[self.step_index]
        if self.step_trained and expected is not None:
            this_step = per_run * max(0, expected - self.step_done)
        elif "seconds" in self.known.get(step.name, {}):
            this_step = max(0.0, self.known[step.name]["seconds"] - (now - self.step_started))
        elif per_run is not None:
            this_step = per_run * max(0, (expected or self.step_planned) - self.step_done)
        else:
            return None, 0.0, 0
        later, untimed = 0.0, 0
        for index in range(self.step_index + 1, len(self.steps)):
            known = self.known.get(self.steps[index].name, {})
            if "seconds" in known:
                later += known["seconds"]
            elif known.get("runs") is not None and per_run is not None:
                later += per_run * known["runs"]
            else:
                untimed += 1
        return this_step, later, untimed


def format_minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
