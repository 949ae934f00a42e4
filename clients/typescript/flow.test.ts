// The whole organization flow through the TypeScript client: types generated
// from openapi.json by openapi-typescript (generated/orgsvc.d.ts), calls made
// with openapi-fetch. Run by scripts/clients-test, which generates the types,
// starts the service and sets ORGSVC_URL.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { components, paths } from "./generated/orgsvc.d.ts";

type Problem = components["schemas"]["Problem"];
type AccessToken = components["schemas"]["AccessToken"];

const baseUrl = process.env.ORGSVC_URL;
if (!baseUrl) throw new Error("ORGSVC_URL is not set: run scripts/clients-test");
const PASSWORD = "correct horse battery staple";

const client = createClient<paths>({ baseUrl });

/** 10 random hex digits. */
function hex10(): string {
  return randomUUID().replaceAll("-", "").slice(0, 10);
}

function unique(prefix: string): string {
  return `${prefix} ${hex10()}`;
}

function collectionOf(name: string): string {
  return "org_" + name.toLowerCase().replaceAll(" ", "_");
}

/** Checks a typed problem document answered with `status`. */
function assertProblem(
  problem: Problem | undefined,
  response: Response,
  status: number,
  code: string,
): Problem {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  assert.ok(problem, "no problem document");
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.equal(problem.type, `urn:orgsvc:problem:${code}`);
  return problem;
}

async function create(name: string, email: string) {
  return client.POST("/org/create", {
    body: { organization_name: name, email, password: PASSWORD },
  });
}

/** Checks the tokens of a 200 login or refresh answer. */
function checkTokens(
  data: AccessToken | undefined,
  error: Problem | undefined,
  response: Response,
): AccessToken {
  assert.equal(error, undefined);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.ok(data);
  assert.equal(data.token_type, "bearer");
  assert.ok(data.expires_in > 0);
  assert.equal(data.refresh_token.length, 43);
  assert.ok(data.refresh_expires_in > 0);
  return data;
}

async function loginTokens(email: string): Promise<AccessToken> {
  const { data, error, response } = await client.POST("/admin/login", {
    body: { email, password: PASSWORD },
  });
  return checkTokens(data, error, response);
}

async function login(email: string): Promise<string> {
  return (await loginTokens(email)).access_token;
}

async function refresh(refreshToken: string) {
  return client.POST("/admin/refresh", { body: { refresh_token: refreshToken } });
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

test("create, login, get, rename, get under the new name, delete", async () => {
  const name = unique("TS Flow");
  const email = `ts-${hex10()}@flow.example`;

  const created = await create(name, email);
  assert.equal(created.response.status, 201);
  assert.ok(created.data);
  assert.equal(created.data.organization_name, name);
  assert.equal(created.data.collection_name, collectionOf(name));

  const token = await login(email.toUpperCase()); // emails compare ignoring case

  const fetched = await client.GET("/org/get", {
    params: { query: { organization_name: name } },
  });
  assert.equal(fetched.response.status, 200);
  assert.ok(fetched.data);
  assert.equal(fetched.data.id, created.data.id);
  assert.equal(fetched.data.admin_id, created.data.admin_id);

  const newName = unique("TS Renamed");
  const renamed = await client.PUT("/org/update", {
    headers: bearer(token),
    body: { organization_name: newName },
  });
  assert.equal(renamed.response.status, 200);
  assert.ok(renamed.data);
  assert.equal(renamed.data.organization_name, newName);
  assert.equal(renamed.data.collection_name, collectionOf(newName));

  const moved = await client.GET("/org/get", {
    params: { query: { organization_name: newName } },
  });
  assert.equal(moved.response.status, 200);
  assert.equal(moved.data?.id, created.data.id);
  const old = await client.GET("/org/get", {
    params: { query: { organization_name: name } },
  });
  assertProblem(old.error, old.response, 404, "organization_not_found");

  const deleted = await client.DELETE("/org/delete", {
    headers: bearer(token),
    params: { query: { organization_name: newName } },
  });
  assert.equal(deleted.response.status, 200);
  assert.deepEqual(deleted.data, { deleted: true, organization_name: newName });

  const gone = await client.GET("/org/get", {
    params: { query: { organization_name: newName } },
  });
  assertProblem(gone.error, gone.response, 404, "organization_not_found");
  // The deleted organization's token is refused.
  const refused = await client.PUT("/org/update", {
    headers: bearer(token),
    body: { organization_name: name },
  });
  assertProblem(refused.error, refused.response, 401, "invalid_token");
});

test("a duplicate name is a typed 409 problem", async () => {
  const name = unique("TS Taken");
  const first = await create(name, `a-${hex10()}@flow.example`);
  assert.equal(first.response.status, 201);
  // Another spelling of the same name, with another email.
  const duplicate = await create(
    name.toUpperCase().replaceAll(" ", "-"),
    `b-${hex10()}@flow.example`,
  );
  assert.equal(duplicate.data, undefined);
  const problem = assertProblem(duplicate.error, duplicate.response, 409, "organization_name_taken");
  assert.equal(problem.title, "Organization name taken");
});

test("invalid input lists every offending field", async () => {
  const { error, response } = await create("x", "not-an-email");
  const problem = assertProblem(error, response, 422, "validation_failed");
  const fields = (problem.errors ?? []).map((e) => e.field).sort();
  assert.deepEqual(fields, ["email", "organization_name"]);
});

test("protected operations need a token", async () => {
  const { error, response } = await client.PUT("/org/update", {
    body: { organization_name: "Anything" },
  });
  assertProblem(error, response, 401, "missing_token");
  assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/);
});

test("refresh rotates, reusing a token revokes the session, logout ends one", async () => {
  const email = `ts-${hex10()}@flow.example`;
  const created = await create(unique("TS Sessions"), email);
  assert.equal(created.response.status, 201);

  const first = await loginTokens(email);
  const rotatedAnswer = await refresh(first.refresh_token);
  const rotated = checkTokens(rotatedAnswer.data, rotatedAnswer.error, rotatedAnswer.response);
  assert.notEqual(rotated.refresh_token, first.refresh_token);
  const listed = await client.GET("/org/data", { headers: bearer(rotated.access_token) });
  assert.equal(listed.response.status, 200);

  // Presenting the used token again revokes the whole session.
  for (const token of [first.refresh_token, rotated.refresh_token]) {
    const { error, response } = await refresh(token);
    assertProblem(error, response, 401, "invalid_refresh_token");
  }

  // Logout revokes another session; repeating it is harmless.
  const second = await loginTokens(email);
  for (let i = 0; i < 2; i++) {
    const out = await client.POST("/admin/logout", {
      body: { refresh_token: second.refresh_token },
    });
    assert.equal(out.response.status, 204);
  }
  const after = await refresh(second.refresh_token);
  assertProblem(after.error, after.response, 401, "invalid_refresh_token");
});
