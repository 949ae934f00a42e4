"""A separate service verifying orgsvc's access tokens, as a team's own API
would: with PyJWT's PyJWKClient and nothing shared with orgsvc but its URL.

    resource_server.py before STATE_FILE   log in, verify, remember the token
    resource_server.py after STATE_FILE    (after `orgsvc keys rotate` and the
                                           new key's lead time) log in again:
                                           the new token names the new key and
                                           verifies, and so does the old one

Run by scripts/clients-test with ORGSVC_URL set; exits non-zero on failure.
"""

import json
import os
import sys
import urllib.request
import uuid

import jwt
from jwt import PyJWKClient

BASE = os.environ["ORGSVC_URL"]
PASSWORD = "correct horse battery staple"
ISSUER = "orgsvc"
AUDIENCE = "orgsvc-api"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def login(email):
    return call("POST", "/admin/login", {"email": email, "password": PASSWORD})["access_token"]


def verify(token):
    """What a resource server does: the JWK Set's key for the token's kid,
    with that key's own algorithm; issuer, audience and expiry checked."""
    metadata = call("GET", "/.well-known/oauth-authorization-server")
    assert metadata["issuer"] == ISSUER, metadata
    jwks = PyJWKClient(metadata["jwks_uri"], cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    return key.key_id, claims


def before(state_file):
    email = f"rs-{uuid.uuid4().hex[:12]}@example.com"
    call(
        "POST",
        "/org/create",
        {"organization_name": f"RS {uuid.uuid4().hex[:8]}", "email": email, "password": PASSWORD},
    )
    token = login(email)
    kid, claims = verify(token)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    print(f"resource server: token of {claims['sub']} verified with key {kid}")
    with open(state_file, "w") as file:
        json.dump({"email": email, "token": token, "kid": kid}, file)


def after(state_file):
    with open(state_file) as file:
        state = json.load(file)
    new_token = login(state["email"])
    new_kid, _ = verify(new_token)
    assert new_kid != state["kid"], f"the new login is still signed by {new_kid}"
    old_kid, _ = verify(state["token"])
    assert old_kid == state["kid"]
    print(
        f"resource server: after the rotation, new tokens are signed by {new_kid}; "
        f"the token signed by {old_kid} before it still verifies"
    )


if __name__ == "__main__":
    phase, state_file = sys.argv[1], sys.argv[2]
    {"before": before, "after": after}[phase](state_file)
