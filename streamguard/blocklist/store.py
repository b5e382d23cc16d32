"""The shared blocklist in Redis: entries, counts, and the change log workers follow.

The data model is described in docs/blocklist-store.md. In short, under one hash tag
(so Redis Cluster keeps the keys on one slot):

- ``meta``    HASH  epoch (random, set when the store is created), version, seq
- ``keys``    HASH  "list<US>id" -> entry number (numbers are never reused)
- ``entries`` HASH  number -> JSON [algo, hash, list, id, category, label, source, added_at],
  a known video's frame with [video, ts, quality] after the label
- ``counts``  HASH  "algo<US>pdq", "list<US>…", "category<US>…" -> live entries
- ``changes`` STREAM one record per write: e (epoch), v (version), op (add|remove), d

Writes run as Lua scripts, each atomic: the entries, the counts, the version and the
change record move together, so a worker that has applied change ``v`` holds exactly
the store as of ``v``. A worker resuming after a gap checks that the next record is
``v + 1`` of the same epoch; anything else means it missed changes and must reload.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import redis.asyncio as aioredis
from redis.typing import EncodableT

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.metadata import Rows
from streamguard.errors import StreamguardError
from streamguard.infra.redis import DEFAULT_MAX_CHANGES, DEFAULT_PREFIX

WRITE_BATCH = 2_000  # entries per script call: Lua's unpack() stops near 8,000 values
PIPELINE_BATCHES = 16
_SEPARATOR = "\x1f"
# A change log record (id, fields), as the client gives it (bytes: infra/redis.py connect).
_Record = tuple[bytes, dict[bytes, bytes]]

_COUNT_DELTAS = """
local function count(deltas, content, by)
  local row = cjson.decode(content)
  for _, field in ipairs({'algo\\31' .. row[1], 'list\\31' .. row[3], 'category\\31' .. row[5]}) do
    deltas[field] = (deltas[field] or 0) + by
  end
end
local function apply_counts(counts, deltas)
  for field, by in pairs(deltas) do
    if by ~= 0 and redis.call('HINCRBY', counts, field, by) <= 0 then
      redis.call('HDEL', counts, field)
    end
  end
end
local function record(meta, changes, maxlen, epoch, op, lines)
  redis.call('HSETNX', meta, 'epoch', epoch)
  local version = redis.call('HINCRBY', meta, 'version', 1)
  redis.call('XADD', changes, 'MAXLEN', '~', maxlen, '*',
    'e', redis.call('HGET', meta, 'epoch'), 'v', version, 'op', op, 'd', table.concat(lines, '\\n'))
end
"""

# KEYS meta keys entries counts changes; ARGV maxlen epoch now BATCH, where BATCH is JSON
# [[[algo, list, category], ...], [[key, group, content prefix], ...]]: one argument, so
# neither side packs or unpacks thousands. An entry's content is its JSON array without
# added_at; an unchanged entry is left alone and keeps its added_at, so importing a file
# again changes nothing. Groups spare the script from decoding each entry to count it.
_WRITE = (
    _COUNT_DELTAS
    + """
local meta, keys, entries, counts, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local maxlen, epoch, now = ARGV[1], ARGV[2], ARGV[3]
local batch = cjson.decode(ARGV[4])
local groups, rows = batch[1], batch[2]
local n = #rows
local names, grouped = {}, {}
for i = 1, n do names[i] = rows[i][1] end
local numbers = redis.call('HMGET', keys, unpack(names))
local known = {}
for i = 1, n do if numbers[i] then known[#known + 1] = numbers[i] end end
local old = {}
if #known > 0 then
  local values = redis.call('HMGET', entries, unpack(known))
  for j, number in ipairs(known) do old[number] = values[j] end
end
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local deltas, new_keys, new_entries, lines = {}, {}, {}, {}
local added, updated = 0, 0
for i = 1, n do
  local prefix = rows[i][3]
  local number, content = numbers[i], nil
  if not number then
    seq = seq + 1
    number = tostring(seq)
    new_keys[#new_keys + 1] = names[i]
    new_keys[#new_keys + 1] = number
    content = prefix .. ',' .. now .. ']'
    added = added + 1
  else
    local before = old[number]
    if before == nil or string.sub(before, 1, #prefix + 1) ~= prefix .. ',' then
      local added_at = before and string.match(before, ',([^,]*)]$') or now
      content = prefix .. ',' .. added_at .. ']'
      if before then count(deltas, before, -1) end
      updated = updated + 1
    end
  end
  if content then
    local group = rows[i][2] + 1
    grouped[group] = (grouped[group] or 0) + 1
    new_entries[#new_entries + 1] = number
    new_entries[#new_entries + 1] = content
    lines[#lines + 1] = number
  end
end
if #new_keys > 0 then
  redis.call('HSET', keys, unpack(new_keys))
  redis.call('HSET', meta, 'seq', seq)
end
if #lines > 0 then
  redis.call('HSET', entries, unpack(new_entries))
  for group, by in pairs(grouped) do
    for j, kind in ipairs({'algo', 'list', 'category'}) do
      local field = kind .. '\\31' .. groups[group][j]
      deltas[field] = (deltas[field] or 0) + by
    end
  end
  apply_counts(counts, deltas)
  record(meta, changes, maxlen, epoch, 'add', lines)
end
return {added, updated}
"""
)

# KEYS as above; ARGV maxlen epoch, then keys ("list<US>id") to remove.
_REMOVE = (
    _COUNT_DELTAS
    + """
local meta, keys, entries, counts, changes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local maxlen, epoch = ARGV[1], ARGV[2]
local names = {}
for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
local numbers = redis.call('HMGET', keys, unpack(names))
local found, lines, deltas = {}, {}, {}
for i = 1, #names do
  if numbers[i] then
    found[#found + 1] = names[i]
    lines[#lines + 1] = numbers[i]
  end
end
if #lines == 0 then return 0 end
for _, content in ipairs(redis.call('HMGET', entries, unpack(lines))) do
  if content then count(deltas, content, -1) end
end
redis.call('HDEL', keys, unpack(found))
redis.call('HDEL', entries, unpack(lines))
apply_counts(counts, deltas)
record(meta, changes, maxlen, epoch, 'remove', lines)
return #lines
"""
)


class StoreError(StreamguardError):
    """Redis cannot be used: unreachable, refused the credentials, or not a blocklist store."""


class ChangesMissed(StreamguardError):
    """The change log no longer holds the changes after a worker's position: reload."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far a reader has got: the store's epoch, its version, the last change record id."""

    epoch: bytes
    version: int
    record_id: bytes


NO_STORE = Position(b"", 0, b"0-0")  # nothing under the prefix yet
_NONE = np.empty(0, np.int64)


@dataclass(frozen=True, slots=True)
class Change:
    """One change record, with the entries it names as they are now.

    The log holds numbers only; their contents are read when the record is. An entry
    changed or removed again since is read in its newer state, which a later record
    confirms: applying records in order still ends at the store's state.
    """

    version: int
    record_id: bytes
    numbers: np.ndarray  # entries added or updated
    entries: Rows
    dropped: np.ndarray  # entries removed


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: Entry
    source: str
    added_at: float


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_quoted = json.encoder.encode_basestring  # a JSON string literal, escaped (in C)


def _content_prefix(entry: Entry, quoted_source: str) -> str:
    """The entry's JSON array without its closing ``,added_at]``.

    Built by hand: calling the JSON encoder once per entry was a third of an import.
    """
    fields = (entry.list, entry.id, entry.category, entry.label)
    frame = f",{_to_json([entry.video, entry.ts, entry.quality])}" if entry.video else ""
    return (
        f'["{entry.algo}","{entry.digest.hex()}",{",".join(map(_quoted, fields))}{frame},'
        f"{quoted_source}"
    )


def _batch_args(
    entries: Sequence[Entry], head: list[EncodableT], source: str
) -> list[list[EncodableT]]:
    """The write script's ARGV for each batch of ``WRITE_BATCH`` entries."""
    quoted_source = _quoted(source)
    batches = []
    for start in range(0, len(entries), WRITE_BATCH):
        groups: dict[tuple[str, str, str], int] = {}
        rows = []
        for entry in entries[start : start + WRITE_BATCH]:
            group = groups.setdefault((entry.algo, entry.list, entry.category), len(groups))
            key = f"{entry.list}{_SEPARATOR}{entry.id}"
            rows.append((key, group, _content_prefix(entry, quoted_source)))
        batches.append([*head, _to_json([list(groups), rows])])
    return batches


_FRAME_ROW = 9  # the length of a stored video frame's row


def _entry(row: list[Any]) -> Entry:
    algo, hex_hash, entry_list, entry_id, category, label = row[:6]
    video, ts, quality = row[6] if len(row) == _FRAME_ROW else ("", None, None)
    return Entry(
        algo, bytes.fromhex(hex_hash), entry_id, entry_list, category, label, video, ts, quality
    )


def _stored(row: list[Any]) -> StoredEntry:
    return StoredEntry(_entry(row), source=row[-2], added_at=float(row[-1]))


def parse_contents(contents: Sequence[bytes]) -> Rows:
    """Stored entries as columns (algo, hash, list, id, category, label[, video, ts])."""
    if not contents:
        return Rows([], [], [], [], [], [])
    rows = _rows(contents)
    # zip stops at the shortest row: the six columns every row has.
    algos, hashes, lists, ids, categories, labels, *_ = zip(*rows, strict=False)
    frames = [row[6] for row in rows if len(row) == _FRAME_ROW]
    if not frames:
        return Rows(algos, hashes, lists, ids, categories, labels)
    if len(frames) < len(rows):
        frames = [row[6] if len(row) == _FRAME_ROW else ("", None) for row in rows]
    videos, times, *_ = zip(*frames, strict=False)
    return Rows(algos, hashes, lists, ids, categories, labels, videos, times)


def _rows(contents: Sequence[bytes]) -> list[list[Any]]:
    """Parse many JSON arrays in one call (much faster than one call per entry)."""
    rows: list[list[Any]] = json.loads(b"[" + b",".join(contents) + b"]")
    return rows


def _after(record_id: bytes) -> bytes:
    """The smallest stream id after ``record_id``: exclusive ranges work on Redis 6.0 too."""
    ms, _, seq = record_id.partition(b"-")
    return b"%s-%d" % (ms, int(seq or 0) + 1)


class BlocklistStore:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = DEFAULT_PREFIX,
        max_changes: int = DEFAULT_MAX_CHANGES,
    ) -> None:
        self.client = client
        self.max_changes = max_changes
        keys = ("meta", "keys", "entries", "counts", "changes")
        self._meta, self._keys, self._entries, self._counts, self._changes = (
            f"{prefix}{{blocklist}}:{name}" for name in keys
        )
        self._write = client.register_script(_WRITE)
        self._remove = client.register_script(_REMOVE)

    @property
    def _all_keys(self) -> list[str]:
        return [self._meta, self._keys, self._entries, self._counts, self._changes]

    # -- writing --------------------------------------------------------------------------

    async def write(self, entries: Sequence[Entry], source: str, now: float) -> tuple[int, int]:
        """Add or update entries, keyed by (list, id); returns (added, updated).

        Each batch of ``WRITE_BATCH`` is atomic. Batches go out in pipelines of
        ``PIPELINE_BATCHES``, and the next pipeline is encoded (in a thread) while Redis
        runs the previous one. Entries that equal what is stored are left alone, so a
        repeated import writes nothing.
        """
        entries = list({(e.list, e.id): e for e in entries}.values())  # the last one wins
        head: list[EncodableT] = [self.max_changes, secrets.token_hex(8), f"{now:.3f}"]
        step = WRITE_BATCH * PIPELINE_BATCHES
        added = updated = 0
        sending: asyncio.Task[list[list[int]]] | None = None
        for start in range(0, len(entries), step):
            part = entries[start : start + step]
            batches = await asyncio.to_thread(_batch_args, part, head, source)
            if sending is not None:
                added, updated = _sum(await sending, added, updated)
            sending = asyncio.create_task(self._send(batches))
        if sending is not None:
            added, updated = _sum(await sending, added, updated)
        return added, updated

    async def _send(self, batches: list[list[EncodableT]]) -> list[list[int]]:
        """Each batch's (added, updated)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for args in batches:
                await self._write(keys=self._all_keys, args=args, client=pipe)
            return await pipe.execute()

    async def remove(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove entries by (list, id); returns how many existed."""
        epoch = secrets.token_hex(8)
        removed = 0
        for start in range(0, len(keys), WRITE_BATCH):
            names = [
                f"{name}{_SEPARATOR}{entry_id}"
                for name, entry_id in keys[start : start + WRITE_BATCH]
            ]
            removed += await self._remove(
                keys=self._all_keys, args=[self.max_changes, epoch, *names]
            )
        return removed

    # -- reading --------------------------------------------------------------------------

    async def counts(self) -> dict[str, dict[str, int]]:
        """Live entries per algo, list and category."""
        grouped: dict[str, dict[str, int]] = {"algo": {}, "list": {}, "category": {}}
        stored = cast(dict[bytes, bytes], await self.client.hgetall(self._counts))
        for field, value in stored.items():
            kind, _, name = field.decode().partition(_SEPARATOR)
            grouped.setdefault(kind, {})[name] = int(value)
        return grouped

    async def position(self) -> Position:
        """The store's current position; ``NO_STORE`` if there is no blocklist under the prefix."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(self._meta, ["epoch", "version"])
            pipe.xrevrange(self._changes, count=1)
            (epoch, version), last = await pipe.execute()
        if epoch is None:
            return NO_STORE
        return Position(epoch, int(version or 0), last[0][0] if last else b"0-0")

    async def scan(self, batch: int = 10_000) -> AsyncIterator[tuple[np.ndarray, list[bytes]]]:
        """Every entry as (numbers, contents), in batches of about ``batch``.

        An entry may come twice. ``parse_contents`` makes entries of the contents; a
        large load does that off the event loop.
        """
        cursor = 0
        while True:
            cursor, payload = await self.client.hscan(self._entries, cursor, count=batch)
            found = cast(dict[bytes, bytes], payload)
            if found:
                yield np.fromiter(map(int, found), np.int64, len(found)), list(found.values())
            if cursor == 0:
                return

    async def export(self, batch: int = 10_000) -> AsyncIterator[StoredEntry]:
        """Every entry with its source and the time it was first added."""
        async for _, contents in self.scan(batch):
            for row in _rows(contents):
                yield _stored(row)

    async def read(self, keys: Sequence[tuple[str, str]]) -> list[StoredEntry]:
        """The entries stored under these (list, id) keys, in their order; absent ones left out."""
        if not keys:
            return []
        names = [f"{name}{_SEPARATOR}{entry_id}" for name, entry_id in keys]
        found = cast(list[bytes | None], await self.client.hmget(self._keys, names))
        numbers = [number for number in found if number is not None]
        if not numbers:
            return []
        contents = cast(list[bytes | None], await self.client.hmget(self._entries, numbers))
        rows = _rows([content for content in contents if content is not None])
        return [_stored(row) for row in rows]

    async def changes(self, since: Position, block_ms: int) -> list[Change]:
        """Changes after ``since``, waiting up to ``block_ms`` for one.

        Raises ChangesMissed if the log cannot continue from ``since`` (trimmed, or
        the store was emptied and made again), StoreError if the store is gone.
        """
        found = cast(
            list[tuple[bytes, list[_Record]]],
            await self.client.xread({self._changes: since.record_id}, count=64, block=block_ms),
        )
        records = found[0][1] if found else []
        if not records:
            await self._check_idle(since)
            return []
        version = since.version
        for _, fields in records:
            if fields[b"e"] != since.epoch or int(fields[b"v"]) != version + 1:
                raise ChangesMissed(
                    f"change log jumps from version {version} to {int(fields[b'v'])}"
                )
            version += 1
        return await self._read_changes(since.version, records)

    async def _read_changes(self, version: int, records: list[_Record]) -> list[Change]:
        named = [np.array(fields[b"d"].split(b"\n"), np.int64) for _, fields in records]
        added = [
            numbers for numbers, (_, f) in zip(named, records, strict=True) if f[b"op"] == b"add"
        ]
        wanted = np.unique(np.concatenate(added)) if added else np.empty(0, np.int64)
        contents = (
            cast(list[bytes | None], await self.client.hmget(self._entries, wanted.tolist()))
            if len(wanted)
            else []
        )
        current = dict(zip(wanted.tolist(), contents, strict=True))
        changes = []
        for numbers, (record_id, fields) in zip(named, records, strict=True):
            version += 1
            if fields[b"op"] == b"remove":
                changes.append(Change(version, record_id, _NONE, parse_contents([]), numbers))
                continue
            present = np.array([current[n] is not None for n in numbers.tolist()], bool)
            found = [current[n] for n in numbers[present].tolist()]
            changes.append(
                Change(
                    version, record_id, numbers[present], parse_contents(found), numbers[~present]
                )
            )
        return changes

    async def _check_idle(self, since: Position) -> None:
        """Nothing new in the log after ``since``: make sure that is because nothing changed."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(self._meta, ["epoch", "version"])
            pipe.xrange(self._changes, min=_after(since.record_id), count=1)
            (epoch, version), newer = await pipe.execute()
        if epoch is None and since.epoch:
            raise StoreError("the blocklist is gone from Redis (emptied or wrong prefix?)")
        moved = (epoch or b"") != since.epoch or int(version or 0) != since.version
        if moved and not newer:
            raise ChangesMissed(
                f"store is at version {int(version or 0)}, log ends at {since.version}"
            )


def _sum(results: list[list[int]], added: int, updated: int) -> tuple[int, int]:
    for batch_added, batch_updated in results:
        added, updated = added + batch_added, updated + batch_updated
    return added, updated
