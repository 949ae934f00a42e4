"""The chaos phase: mixed concurrent traffic over every instance while
instances are killed (-9, then restarted on the same port) and paused
(SIGSTOP, then SIGCONT a few seconds later), with an exact record of every
acknowledged effect, then the invariants.

Bookkeeping rules:
- each document has one owning writer thread, so its last acknowledged body
  is known; a write that got no answer (or a 5xx) has an unknown outcome: the
  document then may hold any of the bodies sent since the last
  acknowledgement (or be gone, for a delete), and its owner stops writing it;
- a POST with an unknown outcome may have created a document whose id we do
  not know: its body carries a unique marker, so a document found later is
  matched to it by body;
- 503 `organization_busy` (a write meeting a rename) "was not applied".
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
import time
from dataclasses import dataclass, field

from .api import Answer, Api
from .processes import TAKEOVER_SECS, Cluster
from .rawdb import RawDb
from .report import Findings, progress

PASSWORD = "chaos-password-1"


@dataclass
class DocState:
    id: str
    acked: dict | None  # last acknowledged body
    possible: list[dict] = field(default_factory=list)  # bodies of writes with unknown outcome since
    deleted: bool = False  # acknowledged delete
    maybe_deleted: bool = False  # delete with unknown outcome
    retired: bool = False  # its owner stopped writing it (an outcome is unknown)


@dataclass
class Org:
    """A long-lived organization: never deleted, renamed in racing pairs."""

    key: str
    id: str
    name: str
    email: str
    token: str
    second_email: str
    second_id: str
    second_role: str | None = "admin"  # None: unknown (a role change got no answer)
    owner_id: str = ""
    docs: dict[str, DocState] = field(default_factory=dict)
    unknown_posts: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class RenamePair:
    org: str
    targets: tuple[str, str]
    answers: list[Answer]


@dataclass
class Ephemeral:
    """An organization created during the chaos, usually deleted again."""

    name: str
    email: str
    created: str  # acked | unknown | refused
    id: str = ""
    deleted: str = ""  # "" | acked | unknown | refused


@dataclass
class ChaosFigures:
    kills: int = 0
    stops: int = 0
    long_stops: int = 0  # longer than the takeover timeout
    targeted_stops: int = 0  # STOPs aimed at an instance just sent a rename
    renames: int = 0
    ephemerals: int = 0


class Chaos:
    def __init__(self, api: Api, cluster: Cluster, raw: RawDb, rng: random.Random, args, findings: Findings):
        self.api = api
        self.cluster = cluster
        self.raw = raw
        self.rng = rng
        self.args = args
        self.findings = findings
        self.orgs: list[Org] = []
        self.pairs: list[RenamePair] = []
        self.ephemerals: list[Ephemeral] = []
        self.anomalies: list[str] = []
        self.figures = ChaosFigures()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.disturb_lock = threading.Lock()  # one kill or STOP at a time

    # -- helpers --------------------------------------------------------------

    def pick(self, rng: random.Random, exclude: int | None = None) -> int:
        choices = [i for i in range(len(self.cluster.instances)) if i != exclude]
        return rng.choice(choices)

    def anomaly(self, text: str) -> None:
        with self.lock:
            self.anomalies.append(text)

    def retrying(self, fn, attempts: int = 10):
        """For setup and checks: calls fn(instance) on rotating instances
        until it gets an answer."""
        answer = None
        for attempt in range(attempts):
            answer = fn(attempt % len(self.cluster.instances))
            if answer.answered and answer.outcome != "503-busy":
                return answer
            time.sleep(0.3)
        return answer

    # -- setup ----------------------------------------------------------------

    def setup(self, count: int) -> None:
        for k in range(count):
            name = f"Chaos Org {k}"
            email = f"owner{k}@chaos.example"
            created = self.retrying(lambda i: self.api.create_org(i, name, email, PASSWORD))
            if created.status != 201:
                raise RuntimeError(f"setup: {created.describe()}")
            token = self.retrying(lambda i: self.api.login(i, email, PASSWORD)).body["access_token"]
            second = f"second{k}@chaos.example"
            added = self.retrying(lambda i: self.api.add_admin(i, token, second, PASSWORD, "admin"))
            if added.status != 201:
                raise RuntimeError(f"setup: {added.describe()}")
            self.orgs.append(
                Org(key=f"org{k}", id=created.body["id"], name=name, email=email, token=token,
                    second_email=second, second_id=added.body["id"], owner_id=created.body["admin_id"])
            )

    # -- client threads -------------------------------------------------------

    def writer(self, wid: int) -> None:
        rng = random.Random(self.rng.random())
        seq = 0
        while not self.stop_event.is_set():
            org = rng.choice(self.orgs)
            with org.lock:
                mine = [d for d in org.docs.values() if not d.retired and not d.deleted and d.acked.get("w") == wid]
            op = rng.random()
            seq += 1
            i = self.pick(rng)
            if op < 0.5 or len(mine) < 3:
                body = {"w": wid, "n": seq, "v": 0, "mark": f"{wid}-{seq}", "note": "chaos"}
                a = self.api.post_doc(i, org.token, body)
                with org.lock:
                    if a.status == 201:
                        org.docs[a.body["id"]] = DocState(a.body["id"], acked=body)
                    elif a.outcome in ("no-answer", "5xx"):
                        org.unknown_posts.append(body)
                    elif not a.not_applied:
                        self.anomaly(f"POST /org/data: {a.describe()}")
            elif op < 0.8:
                doc = rng.choice(mine)
                body = {**doc.acked, "v": doc.acked["v"] + 1, "n": seq}
                a = self.api.put_doc(i, org.token, doc.id, body)
                with org.lock:
                    if a.status == 200:
                        doc.acked, doc.possible = body, []
                    elif a.outcome in ("no-answer", "5xx"):
                        doc.possible.append(body)
                        doc.retired = True
                    elif not a.not_applied:
                        self.anomaly(f"PUT of acknowledged document {doc.id}: {a.describe()}")
                        doc.retired = True
            else:
                doc = rng.choice(mine)
                a = self.api.delete_doc(i, org.token, doc.id)
                with org.lock:
                    if a.status == 204:
                        doc.deleted = True
                    elif a.outcome in ("no-answer", "5xx"):
                        doc.maybe_deleted = True
                        doc.retired = True
                    elif not a.not_applied:
                        self.anomaly(f"DELETE of acknowledged document {doc.id}: {a.describe()}")
                        doc.retired = True
            time.sleep(rng.uniform(0.005, 0.03))

    def renamer(self) -> None:
        rng = random.Random(self.rng.random())
        n = 0
        while not self.stop_event.wait(rng.uniform(0.5, 2.0)):
            org = rng.choice(self.orgs)
            n += 1
            targets = (f"{org.name} r{n} a", f"{org.name} r{n} b")
            first = self.pick(rng)
            second = self.pick(rng, exclude=first)
            answers: list[Answer | None] = [None, None]
            barrier = threading.Barrier(2, timeout=10)

            def send(slot: int, instance: int) -> None:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
                answers[slot] = self.api.rename_org(instance, org.token, targets[slot], timeout=15)

            threads = [threading.Thread(target=send, args=(s, inst)) for s, inst in ((0, first), (1, second))]
            if rng.random() < 0.3:
                # Freeze one of the two instances right into its rename, for
                # longer than the takeover timeout: another instance's
                # reconciler takes the rename over while it sleeps.
                threads.append(threading.Thread(target=self.disturb, args=(
                    self.cluster.instances[rng.choice((first, second))], "stop",
                    rng.uniform(0.02, 0.2), rng.uniform(TAKEOVER_SECS + 0.5, TAKEOVER_SECS + 3))))
                self.figures.targeted_stops += 1
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            with self.lock:
                self.pairs.append(RenamePair(org.key, targets, [a for a in answers if a]))
                self.figures.renames += 2

    def lifecycle(self) -> None:
        rng = random.Random(self.rng.random())
        n = 0
        while not self.stop_event.wait(rng.uniform(0.3, 1.0)):
            n += 1
            name, email = f"Ephemeral {n}", f"eph{n}@chaos.example"
            a = self.api.create_org(self.pick(rng), name, email, PASSWORD, timeout=10)
            eph = Ephemeral(name, email, created="acked" if a.status == 201 else "unknown" if a.outcome in ("no-answer", "5xx") else "refused")
            if a.status == 201:
                eph.id = a.body["id"]
            elif eph.created == "refused" and not a.not_applied:
                self.anomaly(f"create of a fresh organization: {a.describe()}")
            with self.lock:
                self.ephemerals.append(eph)
                self.figures.ephemerals += 1
            if eph.created != "acked":
                continue
            login = self.api.login(self.pick(rng), email, PASSWORD)
            if login.status != 200:
                continue
            token = login.body["access_token"]
            for k in range(rng.randint(0, 3)):
                self.api.post_doc(self.pick(rng), token, {"eph": n, "k": k})
            if rng.random() < 0.7:
                d = self.api.delete_org(self.pick(rng), token, name, timeout=10)
                eph.deleted = "acked" if d.status == 200 else "unknown" if d.outcome in ("no-answer", "5xx") else "refused"
                if eph.deleted == "refused" and not d.not_applied:
                    self.anomaly(f"delete of {name}: {d.describe()}")

    def roles(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop_event.wait(rng.uniform(0.2, 0.8)):
            org = rng.choice(self.orgs)
            if org.second_role == "admin" and rng.random() < 0.25:
                # The owner demoting itself while the only owner: 409 last_owner.
                a = self.api.set_role(self.pick(rng), org.token, org.owner_id, "admin")
                if a.status == 200:
                    self.anomaly(f"{org.name}: the last owner was demoted ({a.describe()})")
                elif a.answered and a.status != 409 and a.outcome != "5xx" and not a.not_applied:
                    self.anomaly(f"{org.name}: demoting the last owner answered {a.describe()}")
                continue
            role = "owner" if org.second_role != "owner" else "admin"
            a = self.api.set_role(self.pick(rng), org.token, org.second_id, role)
            if a.status == 200:
                org.second_role = role
            elif a.outcome in ("no-answer", "5xx"):
                org.second_role = None
            elif not a.not_applied:
                self.anomaly(f"{org.name}: role change answered {a.describe()}")

    def logins(self) -> None:
        rng = random.Random(self.rng.random())
        while not self.stop_event.wait(rng.uniform(0.1, 0.4)):
            org = rng.choice(self.orgs)
            email = rng.choice([org.email, org.second_email])
            a = self.api.login(self.pick(rng), email, PASSWORD)
            if a.answered and a.status != 200 and a.outcome != "5xx" and not a.not_applied:
                self.anomaly(f"login of {email}: {a.describe()}")

    def disturb(self, inst, action: str, delay: float, secs: float) -> None:
        """Kills (and restarts) or pauses (and resumes) one instance after
        `delay`; skipped when another disturbance is under way, so at least
        one instance keeps answering."""
        time.sleep(delay)
        if not self.disturb_lock.acquire(blocking=False):
            return
        try:
            if action == "kill":
                inst.kill9()
                self.figures.kills += 1
                time.sleep(secs)
                try:
                    inst.start()
                except RuntimeError as e:
                    self.anomaly(f"restart after kill -9: {e}")
            else:
                inst.pause()
                self.figures.stops += 1
                if secs > TAKEOVER_SECS:
                    self.figures.long_stops += 1
                time.sleep(secs)
                inst.resume()
        finally:
            self.disturb_lock.release()

    def monkey(self) -> None:
        """Kills and pauses random instances at random moments."""
        rng = random.Random(self.rng.random())
        while not self.stop_event.wait(rng.uniform(1.0, 4.0)):
            inst = rng.choice(self.cluster.instances)
            if rng.random() < 0.4:
                self.disturb(inst, "kill", 0, rng.uniform(0.2, 1.5))
            else:
                self.disturb(inst, "stop", 0, rng.choice([rng.uniform(0.5, 1.8), rng.uniform(2.5, 5.0)]))

    # -- the run --------------------------------------------------------------

    def run(self, duration: float, writers: int) -> None:
        threads = [threading.Thread(target=self.writer, args=(w,), name=f"writer-{w}", daemon=True) for w in range(writers)]
        threads += [
            threading.Thread(target=fn, name=fn.__name__, daemon=True)
            for fn in (self.renamer, self.lifecycle, self.roles, self.logins, self.monkey)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        while not self.stop_event.wait(min(10.0, max(0.1, started + duration - time.monotonic()))):
            elapsed = time.monotonic() - started
            tally = self.api.tally
            progress(
                f"chaos {elapsed:5.0f}/{duration:.0f} s: {tally.total()} requests, "
                f"{tally.outcome_total('5xx')} 5xx, {tally.outcome_total('no-answer')} no answer, "
                f"{self.figures.kills} kills, {self.figures.stops} STOPs, {self.figures.renames} renames"
            )
            if elapsed >= duration:
                self.stop_event.set()
        for t in threads:
            t.join(60)
            if t.is_alive():
                self.anomaly(f"thread {t.name} did not stop within 60 s")
        self.cluster.resume_all()
        for inst in self.cluster.instances:
            if not inst.alive():
                inst.start()

    # -- the invariants -------------------------------------------------------

    def check(self, settle_secs: float) -> None:
        f = self.findings
        left = self.raw.wait_settled(30)
        time.sleep(settle_secs)
        self.raw.wait_swept(4 * TAKEOVER_SECS * 3)
        if left:
            f.fail("chaos", f"records still unsettled 30 s after the chaos: {left}")
        self.check_documents()
        self.check_renames()
        self.check_ephemerals()
        for problem in self.raw.structure().failures():
            f.fail("chaos", problem)
        for text in self.anomalies:
            f.fail("chaos", f"unexpected answer: {text}")
        for fault in self.api.tally.faults:
            f.fail("chaos", f"5xx answer: {fault.describe()}")

    def check_documents(self) -> None:
        f = self.findings
        everything: dict[str, str] = {}  # doc id -> org key
        for org in self.orgs:
            everything.update({d: org.key for d in org.docs})
        acked = unknown_took_effect = 0
        for org in self.orgs:
            listing = self.list_all(org)
            if isinstance(listing, Answer):
                f.fail("chaos", f"{org.name}: listing its documents failed: {listing.describe()}")
                continue
            record = self.raw.organization(org.id) or {}
            raw_ids = self.raw.ids(record.get("collection", "")) if record else set()
            problems: dict[str, list[str]] = defaultdict(list)
            for doc in org.docs.values():
                body = listing.get(doc.id)
                if doc.deleted:
                    if body is not None:
                        problems["acknowledged deletes undone (document back)"].append(doc.id)
                    continue
                if body is None:
                    if not doc.maybe_deleted:
                        problems["lost acknowledged writes (document missing)"].append(f"{doc.id} last acknowledged {doc.acked}")
                    continue
                if body != doc.acked and body not in doc.possible:
                    problems["documents not holding their last acknowledged body"].append(f"{doc.id} holds {body}, acknowledged {doc.acked}")
                if doc.id not in raw_ids:
                    problems[f"documents listed by the API but not in {record.get('collection')}"].append(doc.id)
                acked += 1
            for doc_id, body in listing.items():
                if doc_id in org.docs:
                    continue
                if doc_id in everything:
                    problems["foreign documents listed"].append(f"{doc_id} of {everything[doc_id]}")
                elif body in org.unknown_posts:
                    unknown_took_effect += 1
                else:
                    problems["unexpected documents listed"].append(f"{doc_id} {body}")
            name = record.get("name", "(record gone)")
            for what, items in problems.items():
                f.fail("chaos", f"{org.name} (now {name!r}, collection {record.get('collection')}): {len(items)} {what}, e.g. {items[:2]}")
        located = self.raw.locate(set(everything))
        duplicates = {i: cs for i, cs in located.items() if len(cs) > 1}
        if duplicates:
            f.fail("chaos", f"documents stored in several collections: {dict(list(duplicates.items())[:5])} ({len(duplicates)} in all)")
        strays = {i: cs for i, cs in located.items() if cs and everything[i] and i not in duplicates}
        misplaced = []
        for org in self.orgs:
            home = (self.raw.organization(org.id) or {}).get("collection")
            misplaced += [f"{i} in {cs[0]}" for i, cs in strays.items() if everything[i] == org.key and cs[0] != home]
        if misplaced:
            f.fail("chaos", f"{len(misplaced)} documents lie in another collection than their organization's, e.g. {misplaced[:3]}")
        untagged, mistagged = self.raw.tags()
        if mistagged:
            f.fail("chaos", f"{len(mistagged)} documents tagged with another organization than their collection's: {mistagged[:3]}")
        if untagged:
            f.note(f"chaos: {untagged} documents carry no organization_id (untagged)")
        f.figure("chaos: documents verified (present with the acknowledged body)", acked)
        f.figure("chaos: documents deleted with acknowledgement", sum(d.deleted for o in self.orgs for d in o.docs.values()))
        f.figure("chaos: unanswered POSTs found applied", unknown_took_effect)
        f.figure("chaos: unanswered writes (outcome unknown)", sum(len(o.unknown_posts) + sum(d.retired for d in o.docs.values()) for o in self.orgs))

    def list_all(self, org: Org):
        for attempt in range(5):
            listing = self.api.list_docs(attempt % len(self.cluster.instances), org.token, timeout=20)
            if not isinstance(listing, Answer) or listing.outcome not in ("no-answer", "503-busy"):
                return listing
            time.sleep(0.5)
        return listing

    def check_renames(self) -> None:
        f = self.findings
        won_both = serialized = one = none = 0
        for pair in self.pairs:
            oks = [a for a in pair.answers if a.status == 200]
            for a in pair.answers:
                if a.answered and a.status not in (200, 409) and a.outcome != "5xx" and not a.not_applied:
                    f.fail("chaos", f"rename answered {a.describe()} (expected 200, or 409 for the loser)")
            if len(oks) < 2:
                one += len(oks) == 1
                none += not oks
                continue
            # Both 200: fine only if one rename started from the other's target.
            org = next(o for o in self.orgs if o.key == pair.org)
            targets = [t.lower() for t in self.raw.audit_targets(org.id, "organization.renamed")]
            p, q = (t.lower() for t in pair.targets)
            if f"{p} -> {q}" in targets or f"{q} -> {p}" in targets:
                serialized += 1
            else:
                won_both += 1
                f.fail("chaos", f"racing renames {pair.targets} of {org.name} both won (audit: {[t for t in targets if t.endswith(p) or t.endswith(q)]})")
        f.figure("chaos: rename pairs with one winner", one)
        f.figure("chaos: rename pairs with no winner", none)
        f.figure("chaos: rename pairs both 200 one after the other", serialized)
        f.figure("chaos: rename pairs with two winners", won_both)

    def check_ephemerals(self) -> None:
        f = self.findings
        records = {r["_id"]: r for r in self.raw.organizations()}
        by_canonical = {r.get("canonical"): r for r in records.values()}
        admins = self.raw.admins()
        for eph in self.ephemerals:
            canonical = eph.name.lower().replace(" ", "_")
            record = records.get(eph.id) if eph.id else by_canonical.get(canonical)
            exists = record is not None
            has_admin = any(a.get("email") == eph.email for a in admins)
            if eph.created == "acked" and eph.deleted in ("", "refused") and not exists:
                f.fail("chaos", f"acknowledged organization {eph.name} is gone")
            if eph.deleted == "acked" and (exists or has_admin):
                f.fail("chaos", f"acknowledged delete of {eph.name} undone (record: {exists}, admin: {has_admin})")
            if exists != has_admin:
                f.fail("chaos", f"{eph.name}: half there (record: {exists}, admin: {has_admin})")
        f.figure("chaos: organizations created and deleted (ephemeral)", len(self.ephemerals))
