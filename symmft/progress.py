"""Progress of long work on stderr: a tqdm bar on a terminal, plain periodic lines everywhere else.

tqdm's ``disable=None`` hides the bar when stderr is not a terminal, so under CI, ``nohup`` or a subprocess a
ten-minute ``critical`` or ``train`` printed nothing until it finished. :func:`progress` keeps the bar on a
terminal and otherwise writes one line such as ``symmft: train lstm: 300/1000 steps (30%), 12.1 s, loss=0.41``
every :data:`EVERY` seconds (and one at the end of work that printed any), which a log file or a CI console shows
as it comes; work shorter than :data:`EVERY` stays silent.

A leaf module (stdlib and tqdm only): every stage may use it.
"""

from __future__ import annotations

import sys
import time

#: Seconds between two plain progress lines off a terminal.
EVERY = 10.0


class _Lines:
    """The tqdm subset symmft uses (update, set_postfix, close, context manager), as plain periodic lines."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int, stream, every: float):
        self.total, self.desc, self.unit, self.n, self.stream, self.every = total, desc, unit, initial, stream, every
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self._line()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self) -> None:
        self.last = max(time.monotonic(), self.start + 1e-9)
        count = f"{self.n}/{self.total} {self.unit}s ({100 * self.n / self.total:.0f}%)" if self.total else \
            f"{self.n} {self.unit}s"
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"symmft: {self.desc}: {count}, {self.last - self.start:.1f} s{extra}", file=self.stream, flush=True)

    def close(self) -> None:
        """A last line, where periodic lines were printed (short work stays silent)."""
        if self.stream is not None and self.last > self.start:
            self._line()
        self.stream = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Off:
    """No progress at all (``enabled=False``)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "it", *, initial: int = 0, enabled: bool = True,
             stream=None, every: float = EVERY):
    """A progress reporter for ``total`` units of work (None: unknown) on ``stream`` (default stderr): a tqdm bar
    when the stream is a terminal, else a plain line every ``every`` seconds (and a last one if any was printed);
    nothing when ``enabled`` is False. Use ``update(n)``, ``set_postfix(**values)``, ``close()`` or ``with``."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _Off()
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream)
    return _Lines(total, desc, unit, initial, stream, every)
