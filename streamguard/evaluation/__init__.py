"""``streamguard eval``: how well the production detection path does, measured.

The harness drives the production sampler, matcher and policy (``streamguard.detect``,
``streamguard.ingest``) with pictures and clips it makes; nothing in production imports
it, so the service carries none of its corpus, encoders or report code.
"""
