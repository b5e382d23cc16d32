"""The blocklist files of ``run`` and ``api``, loaded with one log line per refused entry."""

import logging

from streamguard.blocklist.degenerate import degenerate_summary
from streamguard.blocklist.memory import Blocklist
from streamguard.config import Settings
from streamguard.observability import metrics

log = logging.getLogger("streamguard.blocklist")


def load_blocklist_files(settings: Settings) -> Blocklist:
    """The blocklist files, with one log line per refused (degenerate) entry."""
    blocklist, refused = Blocklist.from_files(
        settings.blocklists,
        settings.blocklist_algo,
        settings.max_distance,
        allow_degenerate=settings.allow_degenerate,
    )
    for refusal in refused:
        log.warning("blocklist: %s", refusal)
    metrics.BLOCKLIST_DEGENERATE.labels("refused").set(len(refused))
    counts = ", ".join(f"{a} {n}" for a, n in blocklist.counts().items() if n)
    summary = degenerate_summary(len(refused), sum(blocklist.degenerate_counts().values()))
    log.info("blocklist: %d entries (%s)%s", len(blocklist), counts, summary)
    return blocklist
