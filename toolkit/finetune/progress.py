"""Progress of a fine-tuning run, drawn with the one helper ``toolkit.progress.Progress``.

``TrainingProgress`` is what the training loop talks to: a bar per epoch (loss, top-1 and
images/s in its label) and one summary line per epoch. Disabled (the default), it prints nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

from toolkit.progress import Progress


def epoch_line(record: Mapping[str, Any]) -> str:
    """One line summarising an epoch record of the metrics history (``epoch`` is 1-based).

    Args:
        record: the epoch's record.
    """
    return (
        f"epoch {record['epoch']}/{record['epochs']} [{record['phase']}] "
        f"loss {record['train_loss']:.4f} top-1 {record['train_top1']:.3f} | "
        f"val loss {record['val_loss']:.4f} val top-1 {record['val_top1']:.3f} | "
        f"{record['images_per_s']:.0f} img/s, {record['seconds']:.1f} s"
    )


class TrainingProgress:
    """Epochs, steps and notes of a run; ``enabled`` False (default) prints nothing.

    On a terminal stderr a rich bar per epoch; otherwise plain lines, a step line at most every
    ``interval_s`` seconds (default 10) and one line per epoch.
    """

    def __init__(self, enabled: bool = False, *, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.progress = Progress("fine-tuning", enabled=enabled, stream=stream, interval_s=interval_s)
        self.progress.__enter__()

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start_epoch(self, epoch: int, epochs: int, phase: str, steps: int, done: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` begins, ``done`` of its ``steps`` already run.

        Args:
            epoch: the epoch, 1-based.
            epochs: how many epochs the run has.
            phase: the phase's name.
            steps: the epoch's steps.
            done: the steps already run (a resumed epoch).
        """
        self.progress.reset(f"epoch {epoch}/{epochs} [{phase}]", total=steps, done=done)

    def step(self, done: int, loss: float, top1: float, images_per_s: float) -> None:
        """Move the epoch's bar to ``done`` steps, showing the running loss, top-1 and speed.

        Args:
            done: the steps run so far in the epoch.
            loss: the running training loss.
            top1: the running training top-1 accuracy.
            images_per_s: training images per second.
        """
        self.progress.advance(
            f"loss {loss:.4f} top-1 {top1:.3f} {images_per_s:.0f} img/s", n=done - self.progress.done
        )

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        """Print the epoch's line (``epoch_line``).

        Args:
            record: the epoch's record.
        """
        self.progress.message(epoch_line(record))

    def message(self, text: str) -> None:
        """Print one line (only when enabled).

        Args:
            text: the line.
        """
        self.progress.message(text)

    def close(self) -> None:
        self.progress.close()
