// Invitations and password resets end to end through the TypeScript client
// and a real SMTP server: the service delivers the email, the test reads
// the link's token from the delivered message (inbox.ts) and posts it back
// as a front end would. Run by scripts/clients-test.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { paths } from "./generated/orgsvc.d.ts";
import { linkToken, waitForMessage } from "./inbox.ts";

const baseUrl = process.env.ORGSVC_URL;
if (!baseUrl) throw new Error("ORGSVC_URL is not set: run scripts/clients-test");
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a brand new passphrase";
const client = createClient<paths>({ baseUrl });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const hex10 = () => randomUUID().replaceAll("-", "").slice(0, 10);

async function organization(name: string, email: string): Promise<string> {
  const created = await client.POST("/org/create", {
    body: { organization_name: name, email, password: PASSWORD },
  });
  assert.equal(created.response.status, 201);
  const login = await client.POST("/admin/login", { body: { email, password: PASSWORD } });
  assert.ok(login.data);
  return login.data.access_token;
}

test("invite, accept with the emailed link, log in", async () => {
  const name = `TS Invites ${hex10()}`;
  const invitee = `ts-invitee-${hex10()}@mail-flow.example`;
  const owner = await organization(name, `ts-owner-${hex10()}@mail-flow.example`);

  const invited = await client.POST("/org/invitations", {
    headers: bearer(owner),
    body: { email: invitee, role: "admin" },
  });
  assert.equal(invited.response.status, 201);
  assert.equal(invited.data?.status, "pending");

  const token = linkToken(await waitForMessage(invitee, `Invitation to join ${name}`));
  const accepted = await client.POST("/invitations/accept", {
    body: { token, password: NEW_PASSWORD },
  });
  assert.equal(accepted.response.status, 201);
  assert.equal(accepted.data?.admin.email, invitee);
  assert.equal(accepted.data?.admin.email_verified, true);

  const login = await client.POST("/admin/login", { body: { email: invitee, password: NEW_PASSWORD } });
  assert.equal(login.response.status, 200);
  const again = await client.POST("/invitations/accept", { body: { token, password: NEW_PASSWORD } });
  assert.equal(again.response.status, 410);
  assert.equal(again.error?.code, "invitation_unusable");
});

test("reset with the emailed link: the old tokens and password stop working", async () => {
  const email = `ts-reset-${hex10()}@mail-flow.example`;
  const before = await organization(`TS Reset ${hex10()}`, email);

  const requested = await client.POST("/admin/password-reset", { body: { email } });
  assert.equal(requested.response.status, 202);
  const token = linkToken(await waitForMessage(email, "Reset your password"));
  const confirmed = await client.POST("/admin/password-reset/confirm", {
    body: { token, password: NEW_PASSWORD },
  });
  assert.equal(confirmed.response.status, 204);

  const stale = await client.GET("/org/admins", { headers: bearer(before) });
  assert.equal(stale.response.status, 401);
  const oldPassword = await client.POST("/admin/login", { body: { email, password: PASSWORD } });
  assert.equal(oldPassword.response.status, 401);
  const fresh = await client.POST("/admin/login", { body: { email, password: NEW_PASSWORD } });
  assert.equal(fresh.response.status, 200);
  const reused = await client.POST("/admin/password-reset/confirm", {
    body: { token, password: "yet another passphrase" },
  });
  assert.equal(reused.response.status, 410);
  assert.equal(reused.error?.code, "account_token_unusable");
});
