"""Progress for the people running a benchmark: a bar on stderr while a window is measured."""

import time
from collections.abc import Callable

from tqdm import tqdm


def measure_window(seconds: float, what: str, count: Callable[[], int] | None = None) -> None:
    """Sleep ``seconds`` behind a progress bar, showing ``count()`` (events so far) if given."""
    end = time.monotonic() + seconds
    with tqdm(total=round(seconds), desc=what, unit="s", leave=False) as bar:
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            bar.update(round(seconds - max(left - 1.0, 0.0)) - bar.n)
            if count is not None:
                bar.set_postfix(received=count())
