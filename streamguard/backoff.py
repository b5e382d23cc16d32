"""How long to wait before retrying: exponential back-off with "equal jitter".

Half of each delay is fixed and half random, so many clients that failed together
(a broker restart, a media server outage) do not come back in step.
"""

import random

_RNG = random.Random()


def backoff_s(failures: int, initial_s: float, max_s: float, rng: random.Random = _RNG) -> float:
    """The wait after the ``failures``-th failure in a row (1 for the first): up to
    ``initial_s`` doubled per failure, capped at ``max_s``."""
    delay = min(max_s, initial_s * 2 ** min(max(failures - 1, 0), 30))
    return rng.uniform(delay / 2, delay)
