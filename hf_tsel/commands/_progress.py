"""Extraction progress on the terminal: the CLI's view of :class:`hf_tsel.extraction.ExtractionEvent`."""

from __future__ import annotations

from typing import Any


class ConsoleProgress:
    """One stderr line per step and a transient progress bar per extracted model (rich).

    In a zoo-parallel run every process reports its own models; lines from processes other than
    the main one are prefixed with their index, and only the main process draws bars (bars of
    several processes on one terminal would overwrite each other).
    """

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None
        self.task: Any = None

    def __call__(self, event: Any) -> None:
        if event.kind == "progress":
            if self.progress is not None:
                self.progress.advance(self.task, event.advance)
            return
        self._stop_bar()
        prefix = f"[process {event.process_index}] " if event.process_index else ""
        self.console.print(prefix + event.message, highlight=False, markup=False)
        # a bar redraws itself in place; on a log file or pipe each redraw would leave a line (or a blank one)
        if event.kind == "extracting" and event.process_index == 0 and self.console.is_terminal:
            self._start_bar(event.model, event.total)

    def _start_bar(self, description: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(description, total=total)

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
