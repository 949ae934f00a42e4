"""Progress lines and the findings of a run (failed invariants and figures)."""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

_STARTED = time.monotonic()
_PRINT_LOCK = threading.Lock()


def progress(text: str) -> None:
    """A timestamped progress line (elapsed seconds since the run started)."""
    with _PRINT_LOCK:
        print(f"[{time.monotonic() - _STARTED:6.1f}s] {text}", flush=True)
        sys.stdout.flush()


def elapsed() -> float:
    return time.monotonic() - _STARTED


@dataclass
class Findings:
    """Failed invariants per scenario, figures, and notes (facts that are
    worth reporting but are no failure, e.g. untagged documents)."""

    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    scenarios: list[tuple[str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, scenario: str, text: str) -> None:
        with self.lock:
            self.failures[scenario].append(text)

    def figure(self, name: str, value: object) -> None:
        with self.lock:
            self.figures[name] = value

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)

    def scenario_done(self, scenario: str) -> bool:
        ok = not self.failures.get(scenario)
        self.scenarios.append((scenario, ok))
        progress(f"{scenario}: {'PASS' if ok else 'FAIL (' + str(len(self.failures[scenario])) + ' invariant(s))'}")
        return ok

    @property
    def failed(self) -> bool:
        return any(self.failures.values())

    def print(self, limit_per_scenario: int = 25) -> None:
        print("\n== figures")
        for name, value in self.figures.items():
            print(f"  {name}: {value}")
        if self.notes:
            print("\n== notes")
            for note in self.notes:
                print(f"  - {note}")
        print("\n== scenarios")
        for scenario, ok in self.scenarios:
            print(f"  {'PASS' if ok else 'FAIL'}  {scenario}")
        if self.failed:
            print("\n== failed invariants")
            for scenario, texts in self.failures.items():
                if not texts:
                    continue
                print(f"  {scenario}:")
                for text in texts[:limit_per_scenario]:
                    print(f"    - {text}")
                if len(texts) > limit_per_scenario:
                    print(f"    ... and {len(texts) - limit_per_scenario} more")
