import csv
import dataclasses
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamguard.blocklist import formats
from streamguard.blocklist.entry import (
    COLUMNS,
    DEFAULT_CATEGORY,
    Entry,
    algo_name,
    columns_of,
    csv_row,
)
from streamguard.blocklist.file_layout import LineError
from streamguard.blocklist.formats import load_blocklist_file
from streamguard.errors import BlocklistFormatError
from streamguard.hashing import ALGORITHMS

PDQ = "f" * 60 + "0123"
PHASH = "ae2cc8338496ff4a"
OTHER_PDQ = "0123456789abcdef" * 4  # made up, like every hash in these tests


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_all_columns(tmp_path):
    path = write(
        tmp_path,
        "lists.csv",
        f"algo,hash,id,list,category,label\npdq,{PDQ.upper()},e1,ncmec,CSAM,first\n"
        f"phash,{PHASH},e2,gifct,terror,\n",
    )
    first, second = load_blocklist_file(path)
    assert (first.algo, first.digest.hex(), first.id, first.list) == ("pdq", PDQ, "e1", "ncmec")
    assert (first.category, first.label) == ("csam", "first")
    assert (second.algo, second.digest, second.category) == (
        "phash",
        bytes.fromhex(PHASH),
        "terror",
    )


def test_tsv_defaults_list_to_file_stem_and_derives_ids(tmp_path):
    path = write(tmp_path, "bank.tsv", f"hash\talgo\n{PDQ}\tpdq\n")
    (entry,) = load_blocklist_file(path)
    assert entry.list == "bank"
    assert entry.category == "unspecified"
    assert entry.id.startswith("h") and PDQ not in entry.id


def test_derived_ids_do_not_change(tmp_path):
    """Stores keep these ids: the same hash must get the same id as before."""
    path = write(tmp_path, "bare.txt", f"{PDQ}\n")
    (entry,) = load_blocklist_file(path, algo="pdq")
    assert entry.id == "h5205d13764e59866"


def test_json_lines(tmp_path):
    rows = [{"algo": "dhash", "hash": PHASH, "id": 7, "category": "test", "label": None}]
    path = write(tmp_path, "x.jsonl", "\n".join(json.dumps(r) for r in rows))
    (entry,) = load_blocklist_file(path)
    assert (entry.algo, entry.id, entry.category, entry.label) == ("dhash", "7", "test", "")


def test_bare_hashes_need_algo(tmp_path):
    path = write(tmp_path, "bare.txt", f"# exported\n{PDQ}\n\n{PDQ[::-1]}\n")
    assert [e.algo for e in load_blocklist_file(path, algo="pdq")] == ["pdq", "pdq"]
    with pytest.raises(BlocklistFormatError, match="header lacks column"):
        load_blocklist_file(path)


def test_bom_crlf_comments_and_quoted_labels(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "\ufeffalgo,hash,id,label\r\n# a comment, with a comma\r\n\r\n"
        f'pdq,{PDQ},a,"one, two"\r\n  # indented comment\r\n#pdq,{OTHER_PDQ},c,old\r\n'
        f'phash,{PHASH},b,"say ""hi"""\r\n'.encode()
    )
    first, second = load_blocklist_file(path)
    assert (first.id, first.label) == ("a", "one, two")
    assert (second.id, second.label) == ("b", 'say "hi"')


def test_loaded_entries_are_ordinary_frozen_entries(tmp_path):
    path = write(tmp_path, "l.csv", f"algo,hash,id,list,category,label\npdq,{PDQ},e1,l,c,x\n")
    (entry,) = load_blocklist_file(path)
    assert entry == Entry("pdq", bytes.fromhex(PDQ), "e1", "l", "c", "x")
    assert hash(entry) == hash(Entry("pdq", bytes.fromhex(PDQ), "e1", "l", "c", "x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.label = "changed"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"algo,hash\npdq,{PDQ}\npdq,{PDQ[:-1]}\n",
            "line 3: pdq hash must be 64 hex digits, got 63",
        ),
        (f"algo,hash\npdq,{PDQ}\nphash,{PHASH[:-1]}z\n", "line 3: phash hash is not hexadecimal"),
        (f"algo,hash\nmd5,{PHASH}\n", "line 2: unknown algo 'md5'"),
        (f"algo,hash\n{PDQ},pdq\n", "line 2: unknown algo <hex, not shown: columns swapped?>"),
        (f"algo,hash,id\npdq,{PDQ},a\npdq,{PDQ},a\n", "line 3: duplicate id 'a' (first on line 2)"),
        (f"algo,hash\npdq,{PDQ},extra\n", "line 2: 3 fields, header has 2"),
        (f"hash,algo\n{PDQ},pdq,{OTHER_PDQ}\npdq\n", "line 2: 3 fields, header has 2"),
        (f'algo,hash,label\npdq,{PDQ},"two\nlines"\n', "line 3: 1 fields, header has 3"),
        ("hash,label\nab,c\n", "line 1: header lacks column(s) algo"),
        ('{"algo": "pdq"\n', "line 1: not valid JSON"),
        (f'{{"algo": "pdq", "hash": "{PDQ}"}}\n[1]\n', "line 2: expected a JSON object"),
        (f"pdq {PDQ}\nvideo_md5 {PHASH * 2}\n", "line 2: unknown algo 'video_md5'"),
        (f"pdq {PDQ}\npdq {PDQ} x\n", "line 2: 3 fields, expected 2"),
        (
            f"collab,signal_type,signal_str,category,tags\nc,pdq,{PDQ},MAYBE,\n",
            "line 2: unknown ThreatExchange verdict 'MAYBE'",
        ),
        ("# only a comment\n", "no entries"),
        ("", "no entries"),
        (
            f"collab,signal_type,signal_str,category,tags\nc,pdq,{PDQ},NEGATIVE_CLASS,\n",
            "no entries",
        ),
    ],
)
def test_bad_line_names_file_line_and_problem(tmp_path, text, problem):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(BlocklistFormatError) as caught:
        load_blocklist_file(path)
    message = str(caught.value)
    assert message == f"{path}: {problem}" or message.startswith(f"{path}: {problem}")
    assert "\n" not in message
    assert PDQ not in message and PHASH not in message  # hash lists never reach logs


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(BlocklistFormatError, match="no such file"):
        load_blocklist_file(tmp_path / "absent.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(BlocklistFormatError, match="cannot read"):
        load_blocklist_file(binary)


# Exports of hash-sharing programmes (docs/blocklist-formats.md)


def test_threatexchange_dataset_csv(tmp_path):
    path = write(
        tmp_path,
        "export.csv",
        "collab,signal_type,signal_str,category,tags\n"
        f"Sample Signals,pdq,{PDQ},INVESTIGATION_SEED,\n"
        f"Other Collab,pdq,{PDQ},POSITIVE_CLASS,media_type_photo tag2\n"
        f"Other Collab,pdq,{OTHER_PDQ},NEGATIVE_CLASS,media_type_photo\n",
    )
    first, second = load_blocklist_file(path)
    assert (first.list, first.algo, first.digest.hex()) == ("Sample Signals", "pdq", PDQ)
    assert (first.label, first.category) == ("INVESTIGATION_SEED", DEFAULT_CATEGORY)
    assert (second.list, second.label) == ("Other Collab", "POSITIVE_CLASS media_type_photo tag2")
    assert first.id == second.id  # the same signal, in two collaborations


def test_threatexchange_ui_descriptor_csv(tmp_path):
    path = write(
        tmp_path,
        "descriptors.csv",
        "td_description,td_status,td_confidence,td_severity,td_share_level,"
        "td_indicator_type,td_raw_indicator,td_visibility,td_subjective_tags,td_whitelist_apps\n"
        f'"seen, twice",MALICIOUS,100,SEVERE,AMBER,HASH_PDQ,{PDQ},HAS_WHITELIST,a;b,\n'
        f"test,NON_MALICIOUS,100,INFO,AMBER,HASH_PDQ,{OTHER_PDQ},HAS_WHITELIST,testing,\n",
    )
    (entry,) = load_blocklist_file(path)
    assert (entry.algo, entry.digest.hex(), entry.list) == ("pdq", PDQ, "descriptors")
    assert entry.label == "MALICIOUS a;b"


def test_threatexchange_signal_lines(tmp_path):
    path = write(tmp_path, "signals.txt", f"pdq {PDQ}\nPHASH {PHASH}\n# more later\n")
    first, second = load_blocklist_file(path)
    assert (first.algo, first.digest.hex()) == ("pdq", PDQ)
    assert (second.algo, second.digest.hex()) == ("phash", PHASH)


def test_hma_pdq_data_file(tmp_path):
    path = write(
        tmp_path,
        "1234.pdq.te",
        f"{PDQ},1234567890123456,2021-01-02T03:04:05+0000,media_type_photo disputed\n"
        f"{OTHER_PDQ},1234567890123457,2021-01-02T03:04:05+0000,\n",
    )
    first, second = load_blocklist_file(path)
    assert (first.algo, first.digest.hex(), first.id) == ("pdq", PDQ, "1234567890123456")
    assert (first.label, first.list) == ("media_type_photo disputed", "1234.pdq")
    assert (second.id, second.label) == ("1234567890123457", "")


# Large files: many chunks, parsed by columns until a chunk has a bad line


def big_csv(rows, bad_line=None, bad_row=""):
    lines = ["algo,hash,id,list,category,label"]
    lines += [f"pdq,{i:064x},e{i},l,c,item {i}" for i in range(rows)]
    if bad_line is not None:
        lines[bad_line - 1] = bad_row
    return "\n".join(lines) + "\n"


def test_large_file_loads_every_row(tmp_path):
    entries = load_blocklist_file(write(tmp_path, "big.csv", big_csv(30_000)))
    assert len(entries) == 30_000
    assert entries[12_345] == Entry(
        "pdq", (12_345).to_bytes(32, "big"), "e12345", "l", "c", "item 12345"
    )


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        (f"pdq,{PDQ[:-1]}g,x,l,c,", "pdq hash is not hexadecimal"),
        (f"pdq,{PDQ}0,x,l,c,", "pdq hash must be 64 hex digits, got 65"),
        (f"pdq,{PDQ[:30]} {PDQ[31:]},x,l,c,", "pdq hash is not hexadecimal"),
        (f"pdq,{PDQ[:30]} {PDQ[30:60]} {PDQ[60:62]},x,l,c,", "pdq hash is not hexadecimal"),
        (f"phash,{PDQ},x,l,c,", "phash hash must be 16 hex digits, got 64"),
        (f"sha1,{PDQ},x,l,c,", "unknown algo 'sha1'"),
        (f"pdq,{PDQ},x,l,c", "5 fields, header has 6"),
        (f"pdq,{PDQ},e7,l,c,", "duplicate id 'e7' (first on line 9)"),
    ],
)
def test_bad_line_in_a_large_file_is_named(tmp_path, bad_row, problem):
    path = write(tmp_path, "big.csv", big_csv(40_000, bad_line=31_337, bad_row=bad_row))
    with pytest.raises(BlocklistFormatError) as caught:
        load_blocklist_file(path)
    assert str(caught.value).startswith(f"{path}: line 31337: {problem}")
    assert PDQ[:16] not in str(caught.value)


def test_bad_hex_in_a_large_bare_file_is_named(tmp_path):
    lines = [f"{i:064x}" for i in range(40_000)]
    lines[25_000] = "z" + lines[25_000][1:]
    path = write(tmp_path, "bare.txt", "\n".join(lines))
    with pytest.raises(BlocklistFormatError, match=r"line 25001: pdq hash is not hexadecimal$"):
        load_blocklist_file(path, algo="pdq")


# Properties: what is written is read back; column and line parsers agree


label_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Zl", "Zp", "Cc"]))
stripped = label_text.map(str.strip)


@st.composite
def entries(draw):
    algo = draw(st.sampled_from(sorted(ALGORITHMS)))
    return Entry(
        algo=algo,
        digest=draw(
            st.binary(min_size=ALGORITHMS[algo].bits // 8, max_size=ALGORITHMS[algo].bits // 8)
        ),
        id=draw(stripped.filter(bool)),
        list=draw(stripped.filter(bool)),
        category=draw(stripped.map(str.lower).filter(lambda c: c and c == c.strip().lower())),
        label=draw(stripped),
        **draw(video_frames(algo)),
    )


def video_frames(algo):
    """No video, or a frame of one: a PDQ hash with its time and maybe its quality."""
    frame = st.fixed_dictionaries(
        {
            "video": stripped.filter(bool),
            "ts": st.floats(0, 1e6, allow_nan=False),
            "quality": st.none() | st.integers(50, 100),
        }
    )
    return st.just({}) | frame if algo == "pdq" else st.just({})


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(entries(), min_size=1, max_size=40, unique_by=lambda e: e.key))
def test_written_entries_read_back(tmp_path, written):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = columns_of(written)
    writer.writerow(columns)
    writer.writerows(csv_row(e, columns) for e in written)
    path = write(tmp_path, "roundtrip.csv", out.getvalue())
    assert load_blocklist_file(path) == written


def exact_outcome(path, algo):
    """What the line-by-line parser alone makes of a file, worded as load_blocklist_file."""
    try:
        entries_ = formats._Load(path, algo, fast=False).run()
    except LineError as exc:
        return f"{path}: {exc}"
    return entries_ or f"{path}: no entries"


def outcome(path, algo):
    try:
        return load_blocklist_file(path, algo=algo)
    except BlocklistFormatError as exc:
        return str(exc)


def good_row(draw, i, algos, messy):
    """Field values of a valid row (row i: unique hash); messy ones need trimming or quoting."""
    algo = draw(st.sampled_from(algos))
    hex_hash = f"{i:0{ALGORITHMS[algo_name(algo)].hex_length}x}"
    spellings = {
        "hash": [hex_hash, hex_hash.upper()],
        "id": ["", f"e{i}"],
        "list": ["", "l", "m"],
        "category": ["", "CSAM", "test"],
        "label": ["", "x", "y z"],
        "verdict": ["", "POSITIVE_CLASS", "negative_class", "Disputed"],
        "video": ["", "v1", "v2"],
        "ts": ["", "0", "1.5", "1.23e+02"],  # vPDQ writes 3 significant digits
        "quality": ["", "100", "49"],  # below 50: not indexed
    }
    if messy:
        spellings["hash"].append(f" {hex_hash} ")
        spellings["id"].append(f" e{i} ")
        spellings["list"].append(" l ")
        spellings["category"].append(" test ")
        spellings["label"] += ["one, two", 'a "b"', " pad "]
    return {"algo": algo} | {
        name: draw(st.sampled_from(values)) for name, values in spellings.items()
    }


bad_values = {
    "algo": ["md5", "", PDQ],
    "hash": [PDQ[:-1], "xyz", f"{PDQ[:62]} {PDQ[:1]}", ""],
    "id": ["dup"],
    "verdict": ["odd"],
    "ts": ["-1", "nan", "x"],
    "quality": ["101", "-3", "1.5"],
}


@st.composite
def files(draw):
    """A file of some shape: mostly valid rows, now and then a bad row or an odd line."""
    shape = draw(st.sampled_from(["streamguard", "threatexchange", "bare", "signals"]))
    header, names = {
        "streamguard": (None, draw(st.permutations(COLUMNS))),
        "threatexchange": (
            "collab,signal_type,signal_str,category,tags",
            ["list", "algo", "hash", "verdict", "label"],
        ),
        "bare": (None, ["hash"]),
        "signals": (None, ["algo", "hash"]),
    }[shape]
    if shape == "streamguard":
        header = ",".join(names)
    messy = draw(st.booleans())
    algos = ["pdq"] if shape == "bare" else ["pdq", "PDQ", "hash_pdq", "phash", "dhash"]
    if messy and shape != "signals":
        algos.append(" pdq")
    rows = []
    for i in range(draw(st.integers(0, 30))):
        row = good_row(draw, i, algos, messy)
        if draw(st.integers(0, 19)) == 0:
            name = draw(st.sampled_from([name for name in names if name in bad_values]))
            row[name] = draw(st.sampled_from(bad_values[name]))
        rows.append([row[name] for name in names])
    out = io.StringIO()
    delimiter = " " if shape == "signals" else ","
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    lines = out.getvalue().splitlines()
    for i in draw(st.lists(st.integers(0, len(lines) - 1), max_size=2) if lines else st.just([])):
        lines[i] = draw(st.sampled_from([" ", "  # ", "#"])) + lines[i]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(odd_lines))
    algo = "pdq" if shape == "bare" else draw(st.sampled_from([None, "pdq"]))
    return "\n".join([header, *lines] if header else lines) + "\n", algo


odd_lines = st.sampled_from(["", "   ", "# note", "  # note", "#,,,,,", '"', "a,b"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(file=files(), chunk_chars=st.sampled_from([16, 100, 1 << 17]))
def test_column_and_line_parsers_agree(tmp_path, monkeypatch, file, chunk_chars):
    text, algo = file
    monkeypatch.setattr(formats, "_CHUNK_CHARS", chunk_chars)
    path = write(tmp_path, "any.csv", text)
    assert outcome(path, algo) == exact_outcome(path, algo)
