"""Reading the master database directly (pymongo), for the invariants that
the API cannot show: orphan collections, admins without an organization,
organizations without an owner, dangling name claims, where each document
physically is.

Careful with the stand-in: on nx-27017 a *count* (count_documents,
estimated_document_count) of a missing collection creates it, which would
plant orphan collections and confuse orgsvc's own existence checks. So this
module only ever lists collections and runs `find` (which creates nothing),
and only on collections it has just seen listed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

TENANT_PREFIX = "org_"


@dataclass
class Structure:
    """The structural invariants of one master database, as found."""

    records: int = 0
    unsettled: list[str] = field(default_factory=list)  # records not active, pending admins
    orphan_collections: dict[str, int] = field(default_factory=dict)  # name -> documents
    missing_collections: list[str] = field(default_factory=list)  # active records without their collection
    orgs_without_owner: list[str] = field(default_factory=list)
    admins_without_org: list[str] = field(default_factory=list)
    dangling_claims: list[str] = field(default_factory=list)  # name claims of no record
    unclaimed_names: list[str] = field(default_factory=list)  # active records not holding their name
    moving_left: dict[str, int] = field(default_factory=dict)  # documents still marked `moving`

    def failures(self) -> list[str]:
        out = []
        if self.unsettled:
            out.append(f"unsettled after the settle time: {self.unsettled}")
        if self.orphan_collections:
            out.append(f"orphan collections (name: documents): {self.orphan_collections}")
        if self.missing_collections:
            out.append(f"active organizations whose collection is missing: {self.missing_collections}")
        if self.orgs_without_owner:
            out.append(f"organizations without an owner: {self.orgs_without_owner}")
        if self.admins_without_org:
            out.append(f"admins whose organization does not exist: {self.admins_without_org}")
        if self.dangling_claims:
            out.append(f"name claims held by no organization (names unusable): {self.dangling_claims}")
        if self.unclaimed_names:
            out.append(f"active organizations not holding their name claim: {self.unclaimed_names}")
        if self.moving_left:
            out.append(f"documents still marked `moving` after settling: {self.moving_left}")
        return out


class RawDb:
    def __init__(self, uri: str, db_name: str):
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=30000, connectTimeoutMS=5000)
        self.db = self.client[db_name]
        self.name = db_name

    def close(self) -> None:
        self.client.close()

    def collections(self) -> set[str]:
        return set(self.db.list_collection_names())

    def tenant_collections(self) -> set[str]:
        return {c for c in self.collections() if c.startswith(TENANT_PREFIX)}

    def documents(self, collection: str, projection: dict | None = None) -> list[dict]:
        """Every document of `collection`; [] when it does not exist (never
        creates it)."""
        if collection not in self.collections():
            return []
        return list(self.db[collection].find({}, projection))

    def ids(self, collection: str) -> set[str]:
        return {d["_id"] for d in self.documents(collection, {"_id": 1})}

    def count_moving(self, collection: str) -> int:
        if collection not in self.collections():
            return 0
        return sum(1 for _ in self.db[collection].find({"moving": {"$exists": True}}, {"_id": 1}))

    def count(self, collection: str) -> int:
        return len(self.documents(collection, {"_id": 1}))

    def organizations(self) -> list[dict]:
        return list(self.db["organizations"].find({}))

    def organization(self, org_id: str) -> dict | None:
        return self.db["organizations"].find_one({"_id": org_id})

    def organizations_named(self, canonical: str) -> list[dict]:
        return list(self.db["organizations"].find({"canonical": canonical}))

    def admins(self) -> list[dict]:
        return list(self.db["admins"].find({}, {"password_hash": 0}))

    def claims(self) -> list[dict]:
        return list(self.db["organization_names"].find({}))

    def audit_targets(self, org_id: str, action: str) -> list[str]:
        if "audit_events" not in self.collections():
            return []
        return [e.get("target", "") for e in self.db["audit_events"].find({"organization_id": org_id, "action": action})]

    # -- settling and the structural invariants -------------------------------

    def unsettled(self) -> list[str]:
        out = [f"{r['_id']} {r.get('state')}" for r in self.organizations() if r.get("state") != "active" or r.get("admin_change")]
        out += [f"admin {a['_id']} pending" for a in self.admins() if a.get("pending_since") is not None]
        return out

    def wait_settled(self, timeout: float) -> list[str]:
        """Waits until every record is active with no pending change; returns
        what is still unsettled at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.unsettled()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    def wait_swept(self, timeout: float) -> None:
        """Waits until no tenant collection lacks an owner and no name is
        reserved by an orphan sweep, or `timeout` passes: writes that raced a
        rename may leave an old name's collection behind, which the
        reconcilers' orphan sweep (every fourth lease timeout) drops."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reserved = any("reserved_ms" in c for c in self.claims())
            if not reserved and not self.structure().orphan_collections:
                return
            time.sleep(0.5)

    def structure(self) -> Structure:
        records = self.organizations()
        admins = self.admins()
        claims = self.claims()
        collections = self.tenant_collections()
        by_id = {r["_id"]: r for r in records}
        s = Structure(records=len(records), unsettled=self.unsettled())
        owned = set()
        for r in records:
            owned.add(r.get("collection"))
            pending = ((r.get("pending") or {}).get("rename")) or {}
            owned.update(v for k, v in pending.items() if k.endswith("collection"))
            if r.get("state") == "active" and r.get("collection") not in collections:
                s.missing_collections.append(f"{r.get('name')} ({r['_id']}): {r.get('collection')}")
        for c in sorted(collections - owned):
            s.orphan_collections[c] = self.count(c)
        for c in sorted(collections):
            moving = self.count_moving(c)
            if moving:
                s.moving_left[c] = moving
        owners = {a.get("organization_id") for a in admins if a.get("role") == "owner" and a.get("pending_since") is None}
        for r in records:
            if r.get("state") in ("active", "renaming") and r["_id"] not in owners:
                s.orgs_without_owner.append(f"{r.get('name')} ({r['_id']})")
        for a in admins:
            if a.get("organization_id") not in by_id:
                s.admins_without_org.append(f"{a.get('email')} (organization {a.get('organization_id')})")
        for c in claims:
            if c.get("organization_id") not in by_id:
                s.dangling_claims.append(f"{c['_id']} -> {c.get('organization_id')}")
        held = {(c["_id"], c.get("organization_id")) for c in claims}
        for r in records:
            if r.get("state") == "active" and (r.get("canonical"), r["_id"]) not in held:
                s.unclaimed_names.append(f"{r.get('name')} ({r['_id']})")
        return s

    def tags(self) -> tuple[int, list[str]]:
        """Documents without an `organization_id` tag, and documents whose tag
        is not the organization whose collection holds them."""
        owner = {r.get("collection"): r["_id"] for r in self.organizations()}
        untagged, mistagged = 0, []
        for c in sorted(self.tenant_collections()):
            for doc in self.documents(c, {"_id": 1, "organization_id": 1}):
                tag = doc.get("organization_id")
                if tag is None:
                    untagged += 1
                elif tag != owner.get(c):
                    mistagged.append(f"{c}/{doc['_id']} tagged {tag}")
        return untagged, mistagged

    def clone_to(self, target: str) -> int:
        """Copies this database into `target` (empty) as it is: every
        collection with its indexes and every document byte for byte, so
        whatever fields orgsvc writes come along. Returns the documents
        copied."""
        raw = CodecOptions(document_class=RawBSONDocument)
        dst = self.client[target]
        copied = 0
        for name in sorted(self.collections()):
            dst.create_collection(name)
            for index in self.db[name].list_indexes():
                if index["name"] == "_id_":
                    continue
                options = {k: v for k, v in index.items() if k not in ("v", "key", "ns")}
                dst[name].create_index(list(index["key"].items()), **options)
            batch = []
            for doc in self.db.get_collection(name, codec_options=raw).find({}):
                batch.append(doc)
                if len(batch) == 1000:
                    dst[name].insert_many(batch, ordered=False)
                    copied += len(batch)
                    batch = []
            if batch:
                dst[name].insert_many(batch, ordered=False)
                copied += len(batch)
        return copied

    def locate(self, doc_ids: set[str]) -> dict[str, list[str]]:
        """For each id, the tenant collections holding a document with it."""
        where: dict[str, list[str]] = {i: [] for i in doc_ids}
        for c in sorted(self.tenant_collections()):
            for i in self.ids(c) & doc_ids:
                where[i].append(c)
        return where
