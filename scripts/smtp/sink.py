"""A real SMTP server for the tests (aiosmtpd), on loopback: every message
it accepts is written to MAILDIR as one file, <sequence>-<pid>.eml, with
the envelope in X-Envelope-From / X-Envelope-To headers in front of the
message exactly as received (DATA).

    python sink.py --port 2525 --maildir /tmp/mails [--reject-domain bounce.test] [--login user:password]

Recipients at --reject-domain are refused with 550 (RFC 5321: mailbox
unavailable), so tests can see a permanent failure. With --login the server
offers AUTH PLAIN and LOGIN (also without TLS: loopback only) and accepts
mail only after a login with exactly that user and password; a wrong one
gets 535 (RFC 4954). Runs until SIGTERM or
SIGINT. Files appear atomically (written, then renamed into place).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, maildir: Path, reject_domain: str | None) -> None:
        self.maildir = maildir
        self.reject_domain = reject_domain
        self.sequence = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_domain and address.lower().endswith("@" + self.reject_domain):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{next(self.sequence):06d}-{os.getpid()}.eml"
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        temporary = self.maildir / ("." + name + ".tmp")
        temporary.write_bytes(head + envelope.original_content)
        temporary.rename(self.maildir / name)
        return "250 Message accepted for delivery"


def authenticator_for(login: str):
    user, _, password = login.partition(":")

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    return authenticate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--reject-domain", default=None)
    parser.add_argument("--login", default=None, help="user:password required before MAIL")
    args = parser.parse_args()
    args.maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(
        Sink(args.maildir, args.reject_domain),
        hostname=args.host,
        port=args.port,
        decode_data=False,
        **(
            dict(authenticator=authenticator_for(args.login), auth_required=True, auth_require_tls=False)
            if args.login
            else {}
        ),
    )
    controller.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
