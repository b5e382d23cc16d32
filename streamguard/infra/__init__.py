"""Infrastructure every part of streamguard may use: Redis connections, the stream
registry, the HTTP server. It imports no domain package (blocklist, detect, events,
ingest, runtime, enforce), so any of them can use it without importing each other."""
