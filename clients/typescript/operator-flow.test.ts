// The operator API through the TypeScript client: an operator key (made
// with `orgsvc operator-keys create` before the service started, see
// scripts/lib/api-harness.sh) lists organizations, suspends one (its admins
// cannot log in), resumes it (they can again). Run by scripts/clients-test.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { paths } from "./generated/orgsvc.d.ts";

const baseUrl = process.env.ORGSVC_URL;
const operatorKey = process.env.ORGSVC_TEST_OPERATOR_KEY;
if (!baseUrl || !operatorKey) throw new Error("ORGSVC_URL or ORGSVC_TEST_OPERATOR_KEY is not set: run scripts/clients-test");
const PASSWORD = "correct horse battery staple";
const client = createClient<paths>({ baseUrl });
const asOperator = { Authorization: `Bearer ${operatorKey}` };

test("list, suspend (login refused), resume (login works)", async () => {
  const prefix = `ts-op-${randomUUID().replaceAll("-", "").slice(0, 8)}`;
  const email = `${prefix}@operator-flow.example`;
  const created = await client.POST("/org/create", {
    body: { organization_name: `${prefix} Tenant`, email, password: PASSWORD },
  });
  assert.equal(created.response.status, 201);

  const listed = await client.GET("/operator/organizations", {
    headers: asOperator,
    params: { query: { q: prefix } },
  });
  assert.equal(listed.response.status, 200);
  const tenant = listed.data?.items[0];
  assert.ok(tenant);
  assert.equal(listed.data?.items.length, 1);
  assert.equal(tenant.state, "active");

  const suspended = await client.POST("/operator/organizations/{id}/suspend", {
    headers: asOperator,
    params: { path: { id: tenant.id } },
    body: { reason: "abuse report" },
  });
  assert.equal(suspended.response.status, 200);
  assert.equal(suspended.data?.state, "suspended");
  const refused = await client.POST("/admin/login", { body: { email, password: PASSWORD } });
  assert.equal(refused.response.status, 403);
  assert.equal(refused.error?.code, "organization_suspended");

  const resumed = await client.POST("/operator/organizations/{id}/resume", {
    headers: asOperator,
    params: { path: { id: tenant.id } },
  });
  assert.equal(resumed.response.status, 200);
  const login = await client.POST("/admin/login", { body: { email, password: PASSWORD } });
  assert.equal(login.response.status, 200);
});
