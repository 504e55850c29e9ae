from __future__ import annotations

import pytest

from tes_filetransfer import redact_url
from tes_filetransfer.urls import join_url, scrub_text, url_scheme


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acct.blob.core.windows.net/c/x.txt?sv=1&sig=secret",
         "https://acct.blob.core.windows.net/c/x.txt"),
        ("https://user:pw@host:8443/a/b?token=t#frag", "https://host:8443/a/b"),
        ("s3://bucket/key?X-Amz-Signature=abc", "s3://bucket/key"),
        ("az://cont@acct.blob.core.windows.net/a.txt?sig=s", "az://cont@acct.blob.core.windows.net/a.txt"),
        ("abfss://c@acct.dfs.core.windows.net/x", "abfss://c@acct.dfs.core.windows.net/x"),
        ("/plain/path.txt", "/plain/path.txt"),
        ("file:///a/b.txt", "file:///a/b.txt"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_scrub_text_removes_query_and_credentials() -> None:
    text = "Max retries exceeded with url: /x.txt?sig=secret (http://u:p@h/y?tok=1)"
    out = scrub_text(text)
    assert "secret" not in out and "tok" not in out and "u:p" not in out
    assert "/x.txt" in out and "http://h/y" in out


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("/x/y", ""), ("file:///x", "file"), ("S3://b/k", "s3"), ("https://h/", "https"),
     ("relative/path", ""), ("C:/windows", "")],
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme


@pytest.mark.parametrize(
    ("base", "rel", "expected"),
    [
        ("https://h/out", "a.txt", "https://h/out/a.txt"),
        ("https://h/out/", "/a.txt", "https://h/out/a.txt"),
        ("https://h/out?sig=s", "sub/a b.txt", "https://h/out/sub/a%20b.txt?sig=s"),
        ("s3://bucket", "k/a b", "s3://bucket/k/a b"),
        ("/dest/", "/x/y", "/dest/x/y"),
        ("file:///dest", "x", "file:///dest/x"),
        ("https://h/out", "", "https://h/out"),
    ],
)
def test_join_url(base: str, rel: str, expected: str) -> None:
    assert join_url(base, rel) == expected
