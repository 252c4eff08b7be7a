"""One notebook step executed by papermill on a kernel of this machine, its printed lines streamed."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from lbw_utils.runner.profiles import NOTEBOOK_DIR, Step
from lbw_utils.runs.experiments import SETTINGS_PARAMETERS

KERNEL = "python3"


class _SettingsAreKnown(logging.Filter):
    """Drops papermill's "Passed unknown parameter" warning for a study setting (``epochs``, ``dataset``, ...):
    the training notebooks take every setting by name without repeating it in their parameters cell
    (``ParameterGuard(settings=True)``), so the warning would be wrong; a real typo still fails the guard."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = "Passed unknown parameter: "
        return not (message.startswith(prefix) and message.removeprefix(prefix) in SETTINGS_PARAMETERS)


logging.getLogger("papermill").addFilter(_SettingsAreKnown())


class IPCKernelManager(AsyncKernelManager):
    """A kernel reached over IPC sockets (files in Jupyter's runtime folder), not TCP: the same machine
    only, and no "running over TCP without encryption" warning."""

    # Where the kernel process's own log lines go (set by execute_step: a file beside the executed
    # notebook). The notebook's output does not travel this way: it comes over the sockets.
    kernel_log: Path | None = None
    # Environment variables for the kernels on top of this process's (set by reproduce: one torch
    # thread after a CPU fan-out, so that a run trained in the sequential pass trains as the workers did).
    kernel_env: dict[str, str] = {}

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # jupyter_client's default for IPC is the relative path "kernel-ipc" (sockets kernel-ipc-1 to -5 in
        # the working folder, the notebooks folder while papermill runs): two kernels started at once by
        # parallel workers then bind the same sockets and read each other's messages ("Invalid Signature").
        # An absolute path of the kernel's own, short enough for a socket's name.
        folder = Path(jupyter_runtime_dir())
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **options):
        # The kernel's output becomes a log (papermill streams it to the terminal): no progress bars
        # there, whose carriage returns would clutter it; the [run ]/[done] lines say the same.
        options["env"] = {**(options.get("env") or os.environ), "TQDM_DISABLE": "1", **IPCKernelManager.kernel_env}
        if IPCKernelManager.kernel_log is None:
            return await super()._async_launch_kernel(kernel_cmd, **options)
        with open(IPCKernelManager.kernel_log, "ab") as log:
            return await super()._async_launch_kernel(kernel_cmd, **{**options, "stderr": log})


class LineSink:
    """A file-like target for papermill's ``stdout_file``/``stderr_file`` that hands on whole lines.

    The kernel sends printed text in chunks that may end in the middle of a line (a ``print`` writes
    its text and its newline separately); the partial line waits here for the rest of it.
    """

    def __init__(self, line_handler):
        self.line_handler, self.pending = line_handler, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.line_handler(line)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: lines are handed on as soon as they are complete."""

    def close(self) -> None:
        if self.pending:
            self.line_handler(self.pending)
        self.pending = ""


def execute_step(step: Step, folder: Path, log=print, *, number: str = "", lines=None) -> float:
    """Execute one notebook into ``folder/notebooks``; return its wall time in seconds.

    What the notebook prints reaches ``lines`` (default: ``log``, indented) line by line, as it is printed.
    A cell's displayed value (a table, a figure) stays in the executed notebook."""
    # Absolute: papermill runs the kernel from the notebooks' folder (``cwd``), and a results root given as a
    # relative path (``--results-dir results2``) would then name a folder that does not exist.
    folder = Path(folder).resolve()
    output = folder / "notebooks" / f"{step.name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**step.parameters, "results_dir": str(folder)}
    log(f"==> {number}{step.name}  {json.dumps(step.parameters, sort_keys=True)}")
    IPCKernelManager.kernel_log = output.with_suffix(".kernel.log")
    started = time.perf_counter()
    printed = [LineSink(lines or (lambda line: log(f"    {line}"))) for _ in ("stdout", "stderr")]
    try:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{step.notebook}.ipynb"), str(output), parameters=parameters, kernel_name=KERNEL,
            cwd=str(NOTEBOOK_DIR), progress_bar=False, stdout_file=printed[0], stderr_file=printed[1],
            kernel_manager_class=f"{__name__}.IPCKernelManager",
        )
    finally:
        for sink in printed:
            sink.close()
    seconds = time.perf_counter() - started
    log(f"<== {step.name} finished in {seconds:.1f} s -> {output}")
    return seconds
