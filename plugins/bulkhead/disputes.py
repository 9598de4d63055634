"""The behaviours runtimes dispute, and what each profile of the suite accepts of them.

On a few points the runtime-spec's words and what widely used runtimes do part ways, and have
for years: deleting a ``created`` container, starting a config without ``process``, when
poststart hooks run and what their failure does, and how ``kill`` is told the signal. A suite
that asserts the spec alone fails runc on all of them, every run; one that follows runc asserts
nothing there. So each point is a record here, and ``--spec-profile`` chooses what is accepted:

- ``strict`` (the default): the spec's words, v1.3.0;
- ``runc-compatible``: also what runc does (measured on runc 1.1.5), asserted exactly: a
  runtime that takes runc's path must do all of what runc does on it, so the check can still
  fail.

A record names the outcomes a test can tell apart, the spec's sentence (a short quote), the
threads where the point is argued, and per profile the outcomes accepted. A test finds out which
outcome the runtime took, asserts that outcome's facts from the host, and asks the ``dispute``
fixture whether the active profile accepts it (``Ruling.require``). docs/profiles.md is the
reader's version of the same records.

Nothing here imports pytest or the rest of the machinery: the reports import it for the
profile's description.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bulkhead.options import DEFAULT_PROFILE, PROFILES


@dataclass(frozen=True)
class Dispute:
    """One disputed behaviour: the spec's words, what runtimes do, what each profile accepts."""

    id: str
    title: str
    # Requirement ids (data/requirements.json) the disputed sentence is catalogued under; the
    # first one's section is the record's link.
    spec_ids: tuple[str, ...]
    quote: str
    # The outcomes a test tells apart: name -> what the runtime does.
    outcomes: Mapping[str, str]
    # Profile -> the outcome names it accepts.
    accepts: Mapping[str, tuple[str, ...]]
    # What the runtimes measured here do (runc 1.1.5, crun 1.8.1, Bulkhead's reference).
    runc: str
    crun: str
    reference: str
    # The outcome runc and the reference runtime take (checked against ``accepts`` by the
    # unit tests: runc-compatible accepts runc's; every profile accepts the reference's).
    runc_outcome: str
    reference_outcome: str
    threads: tuple[str, ...] = ()
    note: str = ""

    @property
    def section_url(self) -> str:
        """The v1.3.0 spec section of the disputed sentence (from the shipped catalogue)."""
        from bulkhead import catalogue

        return catalogue.load()[self.spec_ids[0]].url

    def accepted(self, profile: str) -> tuple[str, ...]:
        return self.accepts[check_profile(profile)]


@dataclass
class Ruling:
    """What one profile accepts on one dispute, as a test asks it.

    ``record`` (the fixture's) is told each outcome a test reached, for the test's report.
    """

    dispute: Dispute
    profile: str
    record: Callable[[str], None] | None = field(default=None, repr=False)

    def _known(self, outcome: str) -> str:
        if outcome not in self.dispute.outcomes:
            # A misspelt outcome must not read as "not accepted" and fail for the wrong reason.
            raise KeyError(
                f"dispute {self.dispute.id} has no outcome {outcome!r} "
                f"(known: {', '.join(self.dispute.outcomes)})"
            )
        return outcome

    def accepts(self, outcome: str) -> bool:
        return self._known(outcome) in self.dispute.accepted(self.profile)

    def require(self, outcome: str) -> None:
        """Fails the test (AssertionError) unless the profile accepts ``outcome``; the message
        quotes the spec and names the profile that would accept it."""
        if self.record is not None:
            self.record(f"{self.dispute.id}: {outcome} ({self.profile})")
        if self.accepts(outcome):
            return
        elsewhere = [p for p in PROFILES if outcome in self.dispute.accepts[p]]
        hint = f"; --spec-profile {elsewhere[0]} accepts it" if elsewhere else ""
        raise AssertionError(
            f"{self.dispute.outcomes[outcome]}: the {self.profile} profile does not accept "
            f"this ({self.dispute.title}; the spec: {self.dispute.quote!r}{hint})"
        )


Ask = Callable[[str], Ruling]


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: give one of {', '.join(PROFILES)}")
    return profile


DISPUTES: dict[str, Dispute] = {
    d.id: d
    for d in (
        Dispute(
            id="delete-created",
            title="delete of a created container",
            spec_ids=("runtime.delete.3", "runtime.delete.2"),
            quote="Attempting to `delete` a container that is not `stopped` MUST have no effect "
            "on the container and MUST generate an error.",
            outcomes={
                "refused": "delete without --force exits non-zero and the container stays "
                "'created', its init alive",
                "deleted": "delete without --force exits 0 after killing the init: the "
                "container, its processes and its cgroups are gone",
            },
            accepts={"strict": ("refused",), "runc-compatible": ("refused", "deleted")},
            runc="deletes it: SIGKILLs the init, removes cgroups and state, exits 0",
            crun="deletes it, as runc does",
            reference="refuses ('container is created; delete needs it stopped')",
            runc_outcome="deleted",
            reference_outcome="refused",
            threads=(
                "https://github.com/opencontainers/runc/issues/1774",
                "https://github.com/opencontainers/runtime-tools/pull/583",
                "https://github.com/opencontainers/runtime-spec/pull/875",
                "https://github.com/opencontainers/runtime-spec/issues/1186",
                "https://github.com/youki-dev/youki/issues/337",
            ),
        ),
        Dispute(
            id="start-without-process",
            title="start of a config without process",
            spec_ids=("runtime.start.5", "runtime.create.10"),
            quote="This operation MUST generate an error if `process` was not set.",
            outcomes={
                "refused-at-create": "create refuses the config (the early validation "
                "runtime.md's Create allows) and leaves nothing behind",
                "refused-at-start": "create makes the container; start exits non-zero, runs "
                "nothing, and the container stays 'created'",
                "started-nothing": "start exits 0 although there is no process to run",
            },
            accepts={
                "strict": ("refused-at-create", "refused-at-start"),
                "runc-compatible": ("refused-at-create", "refused-at-start"),
            },
            runc="refuses create ('process property must not be empty')",
            crun="refuses create (with an unrelated message: 'max number of capabilities not "
            "initialized')",
            reference="refuses create ('process is required: there would be nothing to start')",
            runc_outcome="refused-at-create",
            reference_outcome="refused-at-create",
            threads=(
                "https://github.com/opencontainers/runtime-tools/pull/813",
                "https://github.com/opencontainers/runtime-tools/pull/578",
                "https://github.com/opencontainers/runtime-spec/pull/620",
            ),
            note="runc's refusal is the validation runtime.md's Create allows (runtime.create.10),"
            " so both profiles accept the same; neither accepts a start that exits 0.",
        ),
        Dispute(
            id="poststart-order",
            title="when poststart hooks run",
            spec_ids=("config.poststart.1", "runtime.lifecycle.15"),
            quote="The `poststart` hooks MUST be called after the user-specified process is "
            "executed but before the `start` operation returns.",
            outcomes={
                "after-program": "every poststart hook runs during start, after the user "
                "program was executed and before start returns; its state says 'running'",
                "during-create": "every poststart hook runs during create, after the create-"
                "phase hooks and before the program, while the init is still the runtime's; "
                "its state says 'created'",
                "racing": "poststart hooks run during start without waiting for the user "
                "program to be executed",
            },
            accepts={
                "strict": ("after-program",),
                "runc-compatible": ("after-program", "during-create"),
            },
            runc="runs them during create, after createContainer, with status 'created' "
            "(moved to start in runc PR #5186, 2026)",
            crun="runs them after start without waiting for the program (a slow startContainer "
            "hook shows it)",
            reference="runs them after the program is executed, before start returns",
            runc_outcome="during-create",
            reference_outcome="after-program",
            threads=(
                "https://github.com/opencontainers/runc/issues/1710",
                "https://github.com/opencontainers/runc/pull/5186",
                "https://github.com/containers/crun/issues/1562",
            ),
        ),
        Dispute(
            id="poststart-failure",
            title="a failing poststart hook",
            spec_ids=("runtime.lifecycle.16",),
            quote="If any poststart hook fails, the runtime MUST generate an error, stop the "
            "container, and continue the lifecycle at step 12.",
            outcomes={
                "start-fails": "start exits non-zero, later poststart hooks do not run, the "
                "container is stopped and destroyed and the poststop hooks run",
                "create-fails": "create exits non-zero (the poststart hooks ran there), later "
                "poststart hooks do not run, the container is stopped and destroyed and the "
                "poststop hooks run",
                "warned": "start exits 0: the failure taken for a warning (the rule before v1.3.0)",
            },
            accepts={
                "strict": ("start-fails",),
                "runc-compatible": ("start-fails", "create-fails"),
            },
            runc="fails create (its poststart hooks run there), kills the init, removes the "
            "container, runs poststop",
            crun="logs a warning: start exits 0, later poststart hooks run, the container keeps "
            "running",
            reference="fails start, stops and destroys the container, runs poststop",
            runc_outcome="create-fails",
            reference_outcome="start-fails",
            threads=(
                "https://github.com/opencontainers/runtime-spec/pull/1262",
                "https://github.com/opencontainers/runc/issues/1765",
                "https://github.com/opencontainers/runc/issues/5182",
                "https://github.com/containers/crun/issues/2047",
                "https://github.com/containers/crun/pull/1944",
            ),
        ),
        Dispute(
            id="kill-signal-syntax",
            title="how kill is told the signal",
            spec_ids=("runtime.kill.4",),
            quote="This operation MUST send the specified signal to the container process.",
            outcomes={
                "delivered": "kill exits 0 and exactly the named signal reaches the container "
                "process",
                "refused": "kill exits non-zero, nothing reaches the container process and it "
                "runs on",
                "ignored": "kill exits 0 but the signal never reaches the container process",
                "wrong-signal": "a signal other than the named one reaches the container process",
            },
            accepts={
                "strict": ("delivered", "refused"),
                "runc-compatible": ("delivered",),
            },
            runc="takes the signal as a positional name with or without SIG, in any case, or "
            "as a number",
            crun="takes upper-case names with or without SIG and numbers; a lower-case or "
            "unknown name exits 0 and sends nothing",
            reference="takes what runc takes",
            runc_outcome="delivered",
            reference_outcome="delivered",
            threads=(
                "https://github.com/opencontainers/runc/issues/626",
                "https://github.com/opencontainers/runc/pull/2257",
                "https://github.com/opencontainers/runtime-spec/pull/1234",
                "https://github.com/clearcontainers/runtime/issues/109",
            ),
            note="runtime.md says its operations specify no command line; the suite passes the "
            "signal positionally, as runc, crun and runtime-tools' harness do, and its plain "
            "name (TERM, KILL, USR1) is required under both profiles.",
        ),
    )
}


def get(name: str) -> Dispute:
    try:
        return DISPUTES[name]
    except KeyError:
        raise KeyError(f"no dispute {name!r} (known: {', '.join(DISPUTES)})") from None


def ruling(
    name: str, profile: str = DEFAULT_PROFILE, record: Callable[[str], None] | None = None
) -> Ruling:
    return Ruling(get(name), check_profile(profile), record)


def describe(profile: str) -> str:
    """For the report header and summary line: the profile and what it means."""
    check_profile(profile)
    what = "the spec's words" if profile == "strict" else "the spec's words, or what runc does"
    return f"{profile} ({what} on {len(DISPUTES)} disputed behaviours; see docs/profiles.md)"
