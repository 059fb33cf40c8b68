"""The atomic (RecBole) and CSV sources: titles, CRLF files, bad rows counted with their line numbers, and bad
input."""

import pytest

from seqrec.data.prepare import load_dataset, prepare_atomic, prepare_csv
from seqrec.errors import SeqrecError


def write_atomic(folder, inter_lines, crlf=False):
    folder.mkdir()
    end = "\r\n" if crlf else "\n"
    (folder / f"{folder.name}.inter").write_text(end.join(["user_id:token\titem_id:token\trating:float\t"
                                                           "timestamp:float", *inter_lines]) + end)
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token", "a\tAlpha\t1999", "b\t\"Beta\" Two\t",
             "c\tGamma (2001)\t2001"]
    (folder / f"{folder.name}.item").write_text(end.join(items) + end)


def test_atomic_folder_with_crlf(tmp_path):
    lines = [f"{u}\t{i}\t4\t{t}" for t, (u, i) in enumerate([(1, "a"), (1, "b"), (2, "a"), (2, "c"), (1, "c")])]
    write_atomic(tmp_path / "mini", lines, crlf=True)
    row = prepare_atomic(tmp_path / "mini", k_core=1)
    titles = load_dataset("mini").items.set_index("source_id")["title"].to_dict()
    assert titles == {"a": "Alpha (1999)", "b": '"Beta" Two', "c": "Gamma (2001)"}
    assert row.stats["interactions"] == 5 and row.options["origin"] == str(tmp_path / "mini")


def test_csv_source_counts_bad_rows(tmp_path):
    rows = ["user_id,item_id,rating,timestamp", "u1,i1,5,1", "u1,i2,5,2", "u2,i1,five,3", ",i2,4,4",
            "u2,i2,4,5", "u2,i1,3,6",
            "u1,i3,5,7", "u2,i3,5,8"]
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title,genre\ni1,One,Drama\ni2,Two,\ni3,Three,Comedy\n")
    row = prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv", k_core=1)
    assert row.stats["dropped"]["malformed"] == 2 and row.stats["malformed_first_lines"] == ["inter.csv:4",
                                                                                               "inter.csv:5"]
    assert load_dataset("inter").items["genre"].tolist() == ["Drama", "", "Comedy"]
    with pytest.raises(SeqrecError, match=r"inter.csv, line 4: an empty id or a value that is not a number"):
        prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv", k_core=1, strict=True, name="strict")


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, r"missing folder: .*nothing"),
    (lambda d: d.mkdir(), r"needs one .inter file \(nothing.inter\); there is none"),
])
def test_atomic_bad_input(tmp_path, setup, message):
    setup(tmp_path / "nothing")
    with pytest.raises(SeqrecError, match=message):
        prepare_atomic(tmp_path / "nothing")


def test_csv_bad_input(tmp_path):
    (tmp_path / "inter.csv").write_text("user,item\nu1,i1\n")
    (tmp_path / "items.csv").write_text("item_id,name\ni1,One\n")
    with pytest.raises(SeqrecError, match=r"inter.csv: missing column\(s\) user_id, item_id \(found: user, item\)"):
        prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv")
    with pytest.raises(SeqrecError, match="missing file: .*absent.csv"):
        prepare_csv(tmp_path / "absent.csv", tmp_path / "items.csv")
