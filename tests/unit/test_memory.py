"""The in-memory blocklist: entries by number, moved between indexes, metadata in columns."""

import os

import numpy as np

from streamguard.blocklist.entry import Entry
from streamguard.blocklist.memory import Blocklist, BlocklistBuilder
from streamguard.blocklist.metadata import EntryTable, Rows


def entry(entry_id: str, algo: str = "pdq", label: str = "", category: str = "test") -> Entry:
    return Entry(algo, os.urandom(32 if algo == "pdq" else 8), entry_id, "l", category, label)


def found(blocklist: Blocklist, item: Entry) -> list[tuple[str, str]]:
    return [hit.entry.key for hit in blocklist.search(item.algo, item.digest)]


def test_put_replace_and_drop_by_number():
    first, second = entry("a", label="first"), entry("b", "phash", label="ünïcode, label")
    blocklist = Blocklist()
    blocklist.put([3, 7], [first, second])
    assert len(blocklist) == 2 and blocklist.counts() == {"pdq": 1, "phash": 1, "dhash": 0}
    [hit] = blocklist.search("phash", second.digest)
    assert (hit.entry.label, hit.distance, hit.entry.category) == ("ünïcode, label", 0, "test")
    moved = entry("a2", "dhash")  # number 3 changes algo: it must leave the PDQ index
    blocklist.put([3], [moved])
    assert found(blocklist, first) == [] and found(blocklist, moved) == [("l", "a2")]
    assert blocklist.algos == ["phash", "dhash"]
    blocklist.drop([7, 99])
    assert found(blocklist, second) == [] and len(blocklist) == 1


def test_last_entry_wins_for_a_repeated_number():
    old, new = entry("old"), entry("new")
    blocklist = Blocklist()
    blocklist.put([5, 5], [old, new])
    assert len(blocklist) == 1 and found(blocklist, new) == [("l", "new")]
    assert found(blocklist, old) == []


def test_builder_indexes_once_and_keeps_the_last_algo_of_a_number():
    builder = BlocklistBuilder()
    items = [entry(f"e{i}") for i in range(100)]
    builder.put(np.arange(100), items)
    moved = entry("moved", "phash")
    builder.put([10], [moved])  # as a snapshot scan can return a changed entry twice
    blocklist = builder.build()
    assert len(blocklist) == 100
    assert found(blocklist, items[10]) == [] and found(blocklist, moved) == [("l", "moved")]
    assert found(blocklist, items[99]) == [("l", "e99")]


def test_adopt_replaces_contents_in_place():
    kept, fresh = Blocklist(), Blocklist()
    old, new = entry("old"), entry("new")
    kept.put([0], [old])
    fresh.put([0], [new])
    kept.adopt(fresh)
    assert found(kept, old) == [] and found(kept, new) == [("l", "new")]


def test_table_reclaims_text_of_removed_entries():
    table = EntryTable()
    numbers = np.arange(20_000)
    rows = Rows.of([entry(f"{i:060d}", label="x" * 40) for i in range(20_000)])
    table.put(numbers, rows, np.zeros(len(numbers), bool))
    size = len(table._text)
    table.drop(numbers[:15_000])
    assert len(table._text) < size / 2  # compacted
    info = table.info(19_999)
    assert info is not None and info.id == f"{19_999:060d}" and info.label == "x" * 40
    assert table.info(3) is None and table.info(10**9) is None and len(table) == 5_000


def test_replacing_within_an_algo_finds_only_the_new_code():
    old, new = entry("same"), entry("same")
    blocklist = Blocklist()
    blocklist.put([1], [old])
    blocklist.put([1], [new])
    assert found(blocklist, old) == [] and found(blocklist, new) == [("l", "same")]
    assert len(blocklist) == 1 and blocklist.counts()["pdq"] == 1
