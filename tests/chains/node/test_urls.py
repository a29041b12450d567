"""URL redaction: keys never survive in what we show."""

from __future__ import annotations

from chains.node.urls import redact_url, url_secret_parts


def test_redact_url_hides_keys() -> None:
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert (
        redact_url("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef")
        == "https://mainnet.infura.io/v3/***"
    )
    assert (
        redact_url("wss://user:secret@node.example:8546/ws?apikey=xyz")
        == "wss://***@node.example:8546/ws?***"
    )


def test_secret_parts_of_a_url_are_what_a_text_must_not_contain() -> None:
    url = "https://user:CANARY_PASS@node.example/v3/CANARY_KEY_19c2?apikey=CANARY_Q_77"
    parts = url_secret_parts(url)
    assert parts == sorted(
        parts, key=len, reverse=True
    )  # longest first: replace the whole URL before its pieces
    text = f"cannot reach {url} (CANARY_KEY_19c2 refused); retrying node.example/v3/CANARY_KEY_19c2"
    for part in parts:
        text = text.replace(part, "***")
    assert "CANARY" not in text and "node.example" in text
    assert url_secret_parts("http://127.0.0.1:8545") == []  # nothing secret: nothing masked
