import json

import pytest

from streamguard.blocklist.formats import load_blocklist_file
from streamguard.errors import BlocklistFormatError

PDQ = "f" * 60 + "0123"
PHASH = "ae2cc8338496ff4a"


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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"algo,hash\npdq,{PDQ}\npdq,{PDQ[:-1]}\n",
            "line 3: pdq hash must be 64 hex digits, got 63",
        ),
        (f"algo,hash\npdq,{PDQ}\nphash,{PHASH[:-1]}z\n", "line 3: phash hash is not hexadecimal"),
        (f"algo,hash\nmd5,{PHASH}\n", "line 2: unknown algo 'md5'"),
        (f"algo,hash,id\npdq,{PDQ},a\npdq,{PDQ},a\n", "line 3: duplicate id 'a' (first on line 2)"),
        (f"algo,hash\npdq,{PDQ},extra\n", "line 2: 3 fields, header has 2"),
        ("hash,label\nab,c\n", "line 1: header lacks column(s) algo"),
        ('{"algo": "pdq"\n', "line 1: not valid JSON"),
        (f'{{"algo": "pdq", "hash": "{PDQ}"}}\n[1]\n', "line 2: expected a JSON object"),
        ("# only a comment\n", "no entries"),
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
