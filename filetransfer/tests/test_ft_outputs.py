from __future__ import annotations

import os
from pathlib import Path

import pytest

from tes_filetransfer import TransferError, upload_outputs


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    for rel, text in {
        "data/out/a.txt": "A",
        "data/out/b.txt": "BB",
        "data/out/c.log": "CCC",
        "data/out/.hidden.txt": "H",
        "data/other/d.txt": "DDDD",
        "data/res/x.txt": "x",
        "data/res/sub/y.txt": "yy",
        "data/res/sub/deeper/z.txt": "zzz",
    }.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


def test_wildcard_with_path_prefix(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/out/*.txt", "path_prefix": "/data/out/", "url": f"file://{dest}"}],
        root,
    )
    assert logs == [
        {"url": f"file://{dest}/a.txt", "path": "/data/out/a.txt", "size_bytes": "1"},
        {"url": f"file://{dest}/b.txt", "path": "/data/out/b.txt", "size_bytes": "2"},
    ]
    assert (dest / "a.txt").read_text() == "A" and (dest / "b.txt").read_text() == "BB"
    assert not (dest / "c.log").exists() and not (dest / ".hidden.txt").exists()


def test_wildcard_prefix_without_slash_and_url_with_slash(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/*/?.txt", "path_prefix": "/data", "url": f"{dest}/"}], root
    )
    assert [entry["url"] for entry in logs] == [
        f"{dest}/other/d.txt", f"{dest}/out/a.txt", f"{dest}/out/b.txt", f"{dest}/res/x.txt",
    ]
    assert (dest / "other/d.txt").read_text() == "DDDD"


def test_bracket_wildcard(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/out/[ac].*", "path_prefix": "/data/out/", "url": str(dest)}], root
    )
    assert [entry["path"] for entry in logs] == ["/data/out/a.txt", "/data/out/c.log"]


def test_wildcard_without_prefix_uses_the_fixed_folder(root: Path, dest: Path) -> None:
    logs = upload_outputs([{"path": "/data/out/b*", "url": str(dest)}], root)
    assert logs == [{"url": f"{dest}/b.txt", "path": "/data/out/b.txt", "size_bytes": "2"}]


def test_wildcard_matching_nothing_gives_no_entries(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/out/*.bam", "path_prefix": "/data/out/", "url": str(dest)}], root
    )
    assert logs == [] and not dest.exists()


def test_wildcard_prefix_mismatch_is_an_error(root: Path, dest: Path) -> None:
    with pytest.raises(TransferError, match="fix the output's path_prefix"):
        upload_outputs(
            [{"path": "/data/out/*.txt", "path_prefix": "/elsewhere/", "url": str(dest)}], root
        )


def test_directory_output_nested(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/res", "url": f"file://{dest}/res", "type": "DIRECTORY"}], root
    )
    assert logs == [
        {"url": f"file://{dest}/res/x.txt", "path": "/data/res/x.txt", "size_bytes": "1"},
        {"url": f"file://{dest}/res/sub/y.txt", "path": "/data/res/sub/y.txt",
         "size_bytes": "2"},
        {"url": f"file://{dest}/res/sub/deeper/z.txt",
         "path": "/data/res/sub/deeper/z.txt", "size_bytes": "3"},
    ]
    assert (dest / "res/sub/deeper/z.txt").read_text() == "zzz"


def test_file_output_that_is_a_folder_is_uploaded_as_folder(root: Path, dest: Path) -> None:
    logs = upload_outputs([{"path": "/data/res/sub/", "url": str(dest)}], root)
    assert sorted(entry["path"] for entry in logs) == [
        "/data/res/sub/deeper/z.txt", "/data/res/sub/y.txt",
    ]


def test_wildcard_matching_a_folder_uploads_its_files(root: Path, dest: Path) -> None:
    logs = upload_outputs(
        [{"path": "/data/r*", "path_prefix": "/data/", "url": str(dest)}], root
    )
    assert [entry["url"] for entry in logs] == [
        f"{dest}/res/x.txt", f"{dest}/res/sub/y.txt", f"{dest}/res/sub/deeper/z.txt",
    ]


def test_missing_file_output_names_the_output(root: Path, dest: Path) -> None:
    with pytest.raises(TransferError) as info:
        upload_outputs(
            [
                {"path": "/data/out/a.txt", "url": str(dest / "a")},
                {"name": "report", "path": "/data/report.html", "url": str(dest / "r")},
            ],
            root,
        )
    message = str(info.value)
    assert "output 'report' (/data/report.html)" in message
    assert "no file at /data/report.html" in message


def test_missing_directory_output_is_an_error(root: Path, dest: Path) -> None:
    with pytest.raises(TransferError, match="/data/nothing"):
        upload_outputs([{"path": "/data/nothing", "url": str(dest), "type": "DIRECTORY"}], root)


def test_empty_directory_output_gives_no_entries(root: Path, dest: Path) -> None:
    (root / "data/empty").mkdir()
    assert upload_outputs(
        [{"path": "/data/empty", "url": str(dest), "type": "DIRECTORY"}], root
    ) == []


def test_symlink_to_host_file_is_not_followed_outside_root(root: Path, dest: Path) -> None:
    secret = root.parent / "host-secret.txt"
    secret.write_text("host only")
    os.symlink(str(secret), root / "data/out/leak.txt")
    with pytest.raises(TransferError, match="no file at /data/out/leak.txt"):
        upload_outputs([{"path": "/data/out/leak.txt", "url": str(dest / "leak")}], root)
    assert not (dest / "leak").exists()


def test_symlink_inside_container_is_followed_there(root: Path, dest: Path) -> None:
    os.symlink("/data/out/b.txt", root / "data/res/link.txt")
    logs = upload_outputs([{"path": "/data/res/link.txt", "url": str(dest / "l")}], root)
    assert (dest / "l").read_text() == "BB" and logs[0]["size_bytes"] == "2"


def test_output_without_url_is_an_error(root: Path) -> None:
    with pytest.raises(TransferError, match="'url' is missing"):
        upload_outputs([{"path": "/data/out/a.txt"}], root)


def test_output_with_unknown_scheme(root: Path) -> None:
    with pytest.raises(TransferError, match="no storage handles scheme 'xyz'"):
        upload_outputs([{"path": "/data/out/a.txt", "url": "xyz://acct/c/a.txt"}], root)
