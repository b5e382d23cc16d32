"""``streamguard api``: the matching API for uploads (docs/api.md), on aiohttp."""
