"""``streamguard eval``: how well the production detection path does, measured.

The harness drives the production sampler, matcher and policy (``streamguard.detect``,
``streamguard.ingest``) with pictures and clips it makes. Production never imports it:
cli.py registers its command line (commands.py), which loads the rest only when ``eval``
runs, so a service process never loads the corpus, encoders or report code.
"""
