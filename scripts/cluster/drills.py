"""The paused-instance drills: an instance (A) is frozen in the middle of a
lifecycle operation, another instance (B) takes the operation over and
finishes it (rename) or rolls it back (create), the name is reused, and then
A wakes up and carries on where it stopped. Nothing A does after waking may
reach data that is no longer its operation's: that is the tenant-isolation
breach of issue "Several instances on one MongoDB".

Each drill moment is its own small scenario on a fresh master database. A
talks to the stand-in through a `WireProxy` that holds the command of the
chosen step, so A is frozen at exactly the same point on every run; A is
SIGSTOPped while the command is held, then SIGCONTed and the command
released.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .api import Answer, Api
from .processes import Cluster
from .rawdb import RawDb
from .report import Findings, progress
from .wireproxy import Command, HoldRule, Match, WireProxy

PASSWORD = "drill-password-1"
OTHER_PASSWORD = "drill-password-2"
A, B = 0, 1


def canonical(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").replace("_", " ").split())


def collection(name: str) -> str:
    return f"org_{canonical(name)}"


def _statements_match(pred: Callable[[dict], bool]) -> Callable[[Command], bool]:
    return lambda command: any(pred(s) for s in command.documents())


@dataclass
class Moment:
    drill: str
    name: str
    description: str
    rule: Callable[["Drills"], HoldRule]


def _sets(field_name: str) -> Callable[[Command], bool]:
    return _statements_match(lambda s: field_name in ((s.get("u") or {}).get("$set") or {}))


def _mentions(value: object, field_name: str) -> bool:
    """Whether a filter names `field_name` at any depth (inside `$and`/`$or` too)."""
    if isinstance(value, dict):
        return any(k == field_name or _mentions(v, field_name) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, field_name) for v in value)
    return False


def _replaces_with(**fields: str) -> Callable[[Command], bool]:
    return _statements_match(lambda s: all((s.get("u") or {}).get(k) == v for k, v in fields.items()))


def rename_moments(docs: int) -> dict[str, Moment]:
    """Where A is frozen during the rename of Drill X to Drill Y: right after
    the step whose command is matched (the reply to it is held)."""
    x = collection("Drill X")
    batches = max(1, math.ceil(docs / 1000))  # orgsvc copies 1,000 documents per batch
    mid = (batches + 1) // 2
    return {
        m.name: m
        for m in [
            Moment("rename", "start", "copy underway: the first batch of org_drill_x claimed (`moving`), none copied",
                   lambda d: HoldRule(Match("update", x, d.db, _sets("moving")))),
            Moment("rename", "mid", f"mid-copy: {mid - 1} of {batches} batches copied, batch {mid} read from org_drill_x "
                   "and not yet written to org_drill_y",
                   # orgsvc reads three times per batch with a filter on `moving`: the
                   # next documents to claim, the claimed ones, and the check that none
                   # is left; the second read of batch `mid` is the one held.
                   lambda d: HoldRule(Match("find", x, d.db, lambda c: _mentions(c.body.get("filter") or {}, "moving")),
                                      nth=3 * (mid - 1) + 2)),
            Moment("rename", "end", "near the end: every document copied, indexes being copied, org_drill_x not dropped",
                   lambda d: HoldRule(Match("listIndexes", x, d.db))),
            Moment("rename", "switched", "record switched to the new name, old name not released yet",
                   lambda d: HoldRule(Match("update", "organizations", d.db, _replaces_with(canonical="drill_y", state="renaming")))),
        ]
    }


def create_moments() -> dict[str, Moment]:
    """Where A is frozen during the creation of Drill C."""
    c = canonical("Drill C")
    return {
        m.name: m
        for m in [
            Moment("create", "recorded", "record inserted (provisioning), name not claimed yet",
                   lambda d: HoldRule(Match("insert", "organizations", d.db))),
            Moment("create", "claimed", "name claimed, admin not inserted yet",
                   lambda d: HoldRule(Match("update", "organization_names", d.db, _statements_match(lambda s: s.get("q", {}).get("_id") == c)))),
            Moment("create", "admin", "admin inserted, collection not created yet",
                   lambda d: HoldRule(Match("insert", "admins", d.db))),
            Moment("create", "collection", "collection created and probed, record not activated yet",
                   lambda d: HoldRule(Match("delete", collection("Drill C"), d.db))),
        ]
    }


DEFAULT_MOMENTS = "rename:start,rename:mid,rename:end,create:recorded,create:claimed,create:admin,create:collection"


def wait_for(what: str, condition: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
    """Polls `condition` until true; returns the seconds it took. Raises on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(step)
    return time.monotonic() - started


@dataclass
class Background:
    """A request running in a thread (A's request, which will be frozen)."""

    fn: Callable[[], Answer]
    answer: Answer | None = None
    thread: threading.Thread | None = None

    def start(self) -> "Background":
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        self.answer = self.fn()

    def join(self, timeout: float) -> Answer | None:
        assert self.thread
        self.thread.join(timeout)
        return self.answer

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


@dataclass
class Template:
    """What the rename drills start from: Drill X and its documents."""

    org_id: str
    token: str
    docs: dict[str, dict]


@dataclass
class DrillResult:
    scenario: str
    a_answer: str = ""
    takeover_secs: float = 0.0
    at_stop: dict = field(default_factory=dict)


class Drills:
    def __init__(self, api: Api, cluster: Cluster, uri: str, standin_port: int, stamp: str, rng: random.Random, args, findings: Findings):
        self.api = api
        self.cluster = cluster
        self.uri = uri
        self.proxy = WireProxy(standin_port)
        self.stamp = stamp
        self.rng = rng
        self.args = args
        self.findings = findings
        self.db = ""
        self.raw: RawDb | None = None
        self.template: RawDb | None = None
        self.template_data: Template | None = None
        self.results: list[DrillResult] = []

    def close(self) -> None:
        self.proxy.close()
        for raw in {id(r): r for r in (self.raw, self.template) if r}.values():
            raw.close()

    # -- scenario scaffolding --------------------------------------------------

    def fresh(self, scenario: str, clone_of: RawDb | None = None) -> RawDb:
        """A fresh master database (a raw copy of `clone_of`, if given); every
        instance restarted on it, A through the proxy."""
        self.proxy.disarm()
        self.cluster.shutdown()
        self.db = f"cluster_{scenario.replace(':', '_')}_{self.stamp}"
        if clone_of is not None:
            copied = clone_of.clone_to(self.db)
            progress(f"  {self.db}: a raw copy of {clone_of.name} ({copied} documents)")
        self.cluster.start(self.uri, self.db, proxied={A: self.proxy.port})
        if self.raw and self.raw is not self.template:
            self.raw.close()
        self.raw = RawDb(self.uri, self.db)
        return self.raw

    def rename_template(self) -> "Template":
        """Drill X with its documents, stored through the API once, in a
        database of its own that each rename moment starts from (a raw copy:
        storing thousands of documents through the API per moment would
        dominate the run time)."""
        if self.template is None:
            raw = self.fresh("rename_template")
            x = self.create(B, "Drill X", "x-owner@drill.example", PASSWORD)
            token = self.login(B, "x-owner@drill.example", PASSWORD)
            bodies = [{"drill": "rename", "seq": k, "text": f"document {k} of Drill X"} for k in range(self.args.drill_docs)]
            docs = self.seed(token, bodies, "Drill X")
            if raw.wait_settled(20):
                raise RuntimeError(f"the template database did not settle: {raw.unsettled()}")
            self.template = raw
            self.template_data = Template(org_id=x.body["id"], token=token, docs=docs)
        return self.template_data

    def run(self, moments: list[Moment]) -> None:
        for moment in moments:
            scenario = f"{moment.drill} drill, moment '{moment.name}'"
            progress(f"{scenario}: {moment.description}")
            try:
                if moment.drill == "rename":
                    self.rename_drill(scenario, moment)
                else:
                    self.create_drill(scenario, moment)
            except (TimeoutError, RuntimeError) as e:
                self.findings.fail(scenario, f"drill could not run to its end: {e}")
            finally:
                self.proxy.disarm()
                self.cluster.resume_all()
            self.findings.scenario_done(scenario)

    def freeze_a(self, rule: HoldRule, request: Background, scenario: str) -> None:
        """Waits until A's request reaches the held command, then SIGSTOPs A."""
        deadline = time.monotonic() + 60
        while not rule.held.wait(0.05):
            if request.done or time.monotonic() > deadline:
                raise RuntimeError(
                    f"A never reached the moment (its request answered {request.answer.describe() if request.answer else 'nothing yet'})"
                )
        self.cluster.instances[A].pause()
        progress(f"{scenario}: A stopped at the moment (reply held: {rule.held_command.name} {rule.held_command.target})")

    def wake_a(self, rule: HoldRule, request: Background) -> Answer | None:
        self.cluster.instances[A].resume()
        rule.release.set()
        self.proxy.disarm()
        return request.join(120)

    def seed(self, token: str, bodies: list[dict], label: str) -> dict[str, dict]:
        """Stores documents through every instance but A; {id: body}."""
        stored: dict[str, dict] = {}
        others = list(range(1, len(self.cluster.instances)))
        failures: list[Answer] = []

        def post(k: int) -> None:
            a = self.api.post_doc(others[k % len(others)], token, bodies[k], timeout=20)
            if a.status == 201:
                stored[a.body["id"]] = bodies[k]
            else:
                failures.append(a)

        with cf.ThreadPoolExecutor(6) as pool:
            for done, _ in enumerate(pool.map(post, range(len(bodies))), 1):
                if done % 1000 == 0:
                    progress(f"  {label}: {done}/{len(bodies)} documents stored")
        if failures:
            raise RuntimeError(f"storing {label}: {len(failures)} failed, e.g. {failures[0].describe()}")
        return stored

    def login(self, instance: int, email: str, password: str) -> str:
        a = self.api.login(instance, email, password)
        if a.status != 200:
            raise RuntimeError(f"login {email}: {a.describe()}")
        return a.body["access_token"]

    def create(self, instance: int, name: str, email: str, password: str) -> Answer:
        a = self.api.create_org(instance, name, email, password, timeout=20)
        if a.status != 201:
            raise RuntimeError(f"create {name}: {a.describe()}")
        return a

    def check_a_answer(self, scenario: str, answer: Answer | None, result: DrillResult) -> None:
        if answer is None:
            result.a_answer = "still waiting after 120 s"
            self.findings.fail(scenario, "A's request got no answer within 120 s of SIGCONT")
            return
        result.a_answer = f"{answer.status or 'no answer'} {answer.code}".strip()
        if answer.outcome in ("5xx", "no-answer"):
            self.findings.fail(scenario, f"A's request after SIGCONT: {answer.describe()}")

    def check_structure(self, scenario: str) -> None:
        for problem in self.raw.structure().failures():
            self.findings.fail(scenario, problem)

    def check_raw_ownership(self, scenario: str, coll: str, org_id: str, expected: set[str]) -> None:
        """Every document in `coll` is one of `expected`; tags checked when present."""
        untagged = 0
        strangers: list[str] = []
        mistagged: list[str] = []
        for doc in self.raw.documents(coll, {"_id": 1, "organization_id": 1}):
            if doc["_id"] not in expected:
                strangers.append(doc["_id"])
            tag = doc.get("organization_id")
            if tag is None:
                untagged += 1
            elif tag != org_id:
                mistagged.append(f"{doc['_id']} ({tag})")
        if strangers:
            self.findings.fail(scenario, f"raw {coll}: {len(strangers)} documents that are not its organization's (e.g. {strangers[:2]})")
        if mistagged:
            self.findings.fail(scenario, f"raw {coll}: {len(mistagged)} documents tagged with another organization than {org_id} (e.g. {mistagged[:2]})")
        if untagged:
            self.findings.note(f"{scenario}: {untagged} documents in {coll} carry no organization_id (untagged)")

    # -- the rename drill -------------------------------------------------------

    def rename_drill(self, scenario: str, moment: Moment) -> None:
        template = self.rename_template()
        raw = self.fresh(f"rename_{moment.name}", clone_of=self.template)
        result = DrillResult(scenario)
        self.results.append(result)
        f = self.findings
        org_id, token, docs = template.org_id, template.token, template.docs
        if self.api.get_org(B, "Drill X").status != 200:
            raise RuntimeError("Drill X is not found in the copy of the template database")

        rule = self.proxy.arm(moment.rule(self))
        request = Background(lambda: self.api.rename_org(A, token, "Drill Y", timeout=150)).start()
        self.freeze_a(rule, request, scenario)
        result.at_stop = {
            "record": (raw.organization(org_id) or {}).get("state"),
            "org_drill_x": raw.count("org_drill_x"),
            "moving": raw.count_moving("org_drill_x"),
            "org_drill_y": raw.count("org_drill_y"),
        }
        progress(f"{scenario}: at the stop {result.at_stop}")

        def taken_over() -> bool:
            record = raw.organization(org_id) or {}
            return record.get("state") == "active" and record.get("canonical") == "drill_y"

        result.takeover_secs = wait_for("another instance finishing the rename", taken_over, 60, 0.2)
        if self.api.get_org(B, "Drill Y").status != 200:
            raise RuntimeError("the rename finished in the database but B does not find Drill Y")
        progress(f"{scenario}: rename finished by another instance {result.takeover_secs:.1f} s after the stop")

        doomed = self.rng.sample(sorted(docs), len(docs) // 10)
        with cf.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: (i, self.api.delete_doc(B, token, i)), doomed))
        deleted = {i for i, a in answers if a.status == 204}
        if len(deleted) != len(doomed):
            raise RuntimeError(f"deleting through B: {len(doomed) - len(deleted)} deletes failed")
        new_x = self.create(B, "Drill X", "x-new@drill.example", PASSWORD)
        new_token = self.login(B, "x-new@drill.example", PASSWORD)
        new_docs = self.seed(new_token, [{"drill": "rename", "new_x": k} for k in range(100)], "new Drill X")
        progress(f"{scenario}: deleted {len(deleted)} of Y's documents, new Drill X has {len(new_docs)}; waking A")

        self.check_a_answer(scenario, self.wake_a(rule, request), result)
        left = raw.wait_settled(20)
        time.sleep(1.5)
        if left:
            f.fail(scenario, f"unsettled 20 s after A woke: {left}")

        expected = set(docs) - deleted
        listing = self.api.list_docs(B, token, timeout=30)
        if isinstance(listing, Answer):
            f.fail(scenario, f"listing Drill Y: {listing.describe()}")
        else:
            self.compare("Drill Y", scenario, listing, expected, docs, deleted, set(new_docs))
        with cf.ThreadPoolExecutor(4) as pool:
            readable = [i for i, a in pool.map(lambda i: (i, self.api.get_doc(B, token, i)), new_docs) if a.status == 200]
        if readable:
            f.fail(scenario, f"{len(readable)} of new Drill X's documents are readable with Drill Y's token, e.g. {readable[:3]}")
        listing_new = self.api.list_docs(B, new_token, timeout=30)
        if isinstance(listing_new, Answer):
            f.fail(scenario, f"listing the new Drill X: {listing_new.describe()}")
        else:
            self.compare("new Drill X", scenario, listing_new, set(new_docs), new_docs, set(), set(docs))
        record = raw.organization(org_id) or {}
        if record.get("canonical") != "drill_y":
            f.fail(scenario, f"Drill Y's record ended up named {record.get('name')!r}")
        self.check_raw_ownership(scenario, "org_drill_y", org_id, expected)
        self.check_raw_ownership(scenario, "org_drill_x", new_x.body["id"], set(new_docs))
        self.check_structure(scenario)

    def raw_whereabouts(self, doc_id: str) -> str:
        """Where a document the API does not list is in the raw database
        (every tenant collection, its stored fields but the body), for the
        report of a failed drill."""
        found = []
        for coll in sorted(self.raw.tenant_collections()):
            for doc in self.raw.documents(coll, {"body": 0}):
                if doc.get("_id") == doc_id:
                    found.append(f"{coll}: {doc}")
        return "; ".join(found) or "in no tenant collection"

    def compare(self, label: str, scenario: str, listing: dict, expected: set[str], bodies: dict, deleted: set[str], foreign: set[str]) -> None:
        f = self.findings
        listed = set(listing)
        lost = expected - listed
        back = listed & deleted
        alien = listed & foreign
        unknown = listed - expected - deleted - foreign
        if lost:
            f.fail(scenario, f"{label}: {len(lost)} of its {len(expected)} documents are missing (e.g. {sorted(lost)[:2]})")
            for doc_id in sorted(lost)[:5]:
                f.note(f"{scenario}: missing {doc_id}: {self.raw_whereabouts(doc_id)}")
        if back:
            f.fail(scenario, f"{label}: {len(back)} deleted documents came back (e.g. {sorted(back)[:2]})")
        if alien:
            f.fail(scenario, f"{label}: {len(alien)} documents of another organization are listed (e.g. {sorted(alien)[:2]})")
        if unknown:
            f.fail(scenario, f"{label}: {len(unknown)} documents nobody stored are listed")
        wrong = [i for i in listed & expected if listing[i] != bodies[i]]
        if wrong:
            f.fail(scenario, f"{label}: {len(wrong)} documents have a body that was never stored")
        self.findings.figure(f"{scenario}: {label} documents listed / expected", f"{len(listed)} / {len(expected)}")

    # -- the create drill -------------------------------------------------------

    def create_drill(self, scenario: str, moment: Moment) -> None:
        raw = self.fresh(f"create_{moment.name}")
        result = DrillResult(scenario)
        self.results.append(result)
        f = self.findings
        c = canonical("Drill C")
        rule = self.proxy.arm(moment.rule(self))
        request = Background(lambda: self.api.create_org(A, "Drill C", "c-owner@drill.example", PASSWORD, timeout=150)).start()
        self.freeze_a(rule, request, scenario)
        records = raw.organizations_named(c)
        result.at_stop = {
            "record": [r.get("state") for r in records],
            "admin": any(a.get("email") == "c-owner@drill.example" for a in raw.admins()),
            "collection": "org_drill_c" in raw.collections(),
        }
        progress(f"{scenario}: at the stop {result.at_stop}")
        result.takeover_secs = wait_for("another instance rolling the creation back", lambda: not raw.organizations_named(c), 60, 0.2)
        progress(f"{scenario}: creation rolled back by another instance {result.takeover_secs:.1f} s after the stop")

        same_name = self.create(B, "Drill C", "c-other@drill.example", PASSWORD)
        same_email = self.create(B, "Drill C Two", "c-owner@drill.example", OTHER_PASSWORD)
        token = self.login(B, "c-other@drill.example", PASSWORD)
        token_two = self.login(B, "c-owner@drill.example", OTHER_PASSWORD)
        docs = self.seed(token, [{"drill": "create", "k": k} for k in range(50)], "new Drill C")
        docs_two = self.seed(token_two, [{"drill": "create-two", "k": k} for k in range(20)], "Drill C Two")
        progress(f"{scenario}: Drill C and Drill C Two recreated through B with documents; waking A")

        self.check_a_answer(scenario, self.wake_a(rule, request), result)
        left = raw.wait_settled(20)
        time.sleep(1.5)
        if left:
            f.fail(scenario, f"unsettled 20 s after A woke: {left}")

        records = raw.organizations_named(c)
        if [r["_id"] for r in records] != [same_name.body["id"]]:
            f.fail(scenario, f"organizations named Drill C: {[(r['_id'], r.get('state')) for r in records]}, expected only {same_name.body['id']}")
        if self.api.get_org(B, "Drill C").body.get("id") != same_name.body["id"]:
            f.fail(scenario, "GET /org/get?organization_name=Drill C does not answer the organization B created")
        login = self.api.login(B, "c-owner@drill.example", OTHER_PASSWORD)
        if login.status != 200:
            f.fail(scenario, f"the admin email of A's creation is not usable by Drill C Two: login {login.describe()}")
        holders = [a for a in raw.admins() if a.get("email") == "c-owner@drill.example"]
        if [a.get("organization_id") for a in holders] != [same_email.body["id"]]:
            f.fail(scenario, f"admin c-owner@drill.example belongs to {[a.get('organization_id') for a in holders]}, expected Drill C Two")
        for label, tok, expected in (("new Drill C", token, docs), ("Drill C Two", token_two, docs_two)):
            listing = self.api.list_docs(B, tok, timeout=30)
            if isinstance(listing, Answer):
                f.fail(scenario, f"listing {label}: {listing.describe()}")
            else:
                self.compare(label, scenario, listing, set(expected), expected, set(), set())
        self.check_raw_ownership(scenario, "org_drill_c", same_name.body["id"], set(docs))
        self.check_structure(scenario)
