"""The messages a real SMTP server on loopback (scripts/smtp-sink) received,
one .eml file each in ORGSVC_TEST_MAILDIR: the flows read the links' tokens
from them, as a person would from their inbox."""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from email.message import EmailMessage
from pathlib import Path

MAILDIR = Path(os.environ["ORGSVC_TEST_MAILDIR"])
TOKEN = re.compile(r"[?&#]token=([A-Za-z0-9_-]{43})\b")


def messages_to(address: str) -> list[EmailMessage]:
    """Every message delivered to `address` so far, oldest first."""
    found = []
    for path in sorted(MAILDIR.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address.lower() in str(message["To"]).lower():
            found.append(message)
    return found


def wait_for_message(address: str, subject: str, after: int = 0, timeout: float = 30) -> EmailMessage:
    """The first message to `address` with `subject` beyond the first `after`
    ones, waiting for the service's sender to deliver it."""
    deadline = time.monotonic() + timeout
    while True:
        matching = [m for m in messages_to(address) if m["Subject"] == subject]
        if len(matching) > after:
            return matching[after]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no message {subject!r} to {address} within {timeout} s; "
                f"got {[m['Subject'] for m in messages_to(address)]}"
            )
        time.sleep(0.2)


def link_token(message: EmailMessage) -> str:
    """The token in the link of the plain-text body (the HTML body carries
    the same link)."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    match = TOKEN.search(text)
    assert match, text
    assert match.group(1) in html
    return match.group(1)
