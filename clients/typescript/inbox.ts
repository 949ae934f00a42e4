// The messages a real SMTP server on loopback (scripts/smtp-sink) received,
// one .eml file each in ORGSVC_TEST_MAILDIR: the flows read the links'
// tokens from them, as a person would from their inbox.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const maildir = process.env.ORGSVC_TEST_MAILDIR;
if (!maildir) throw new Error("ORGSVC_TEST_MAILDIR is not set: run scripts/clients-test");

/** A delivered message: its header fields (names lowercased) and raw body. */
interface Delivered {
  headers: Map<string, string>;
  body: string;
}

function parse(raw: string): Delivered {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).replaceAll(/\r\n[ \t]+/g, " ");
  const headers = new Map<string, string>();
  for (const line of head.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body: raw.slice(split + 4) };
}

/** Undoes quoted-printable (RFC 2045 §6.7): soft line breaks and `=XX`. */
function unquote(text: string): string {
  return text
    .replaceAll(/=\r?\n/g, "")
    .replaceAll(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The first message to `address` with `subject`, waiting for delivery. */
export async function waitForMessage(address: string, subject: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = readdirSync(maildir as string)
      .filter((name) => name.endsWith(".eml"))
      .sort()
      .map((name) => parse(readFileSync(join(maildir as string, name), "latin1")))
      .find(
        (m) =>
          (m.headers.get("to") ?? "").toLowerCase().includes(address.toLowerCase()) &&
          m.headers.get("subject") === subject,
      );
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no message "${subject}" to ${address}`);
    await sleep(200);
  }
}

/** The 43-character token of the message's link. */
export function linkToken(message: Delivered): string {
  const match = /[?&#]token=([A-Za-z0-9_-]{43})\b/.exec(unquote(message.body));
  if (!match?.[1]) throw new Error(`no link token in: ${message.body.slice(0, 500)}`);
  return match[1];
}
