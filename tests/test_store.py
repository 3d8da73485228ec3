"""The state store's behaviour, one suite for every backend (files, postgres): the protocol in
fracta/store/base.py, operation by operation, error by error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import agent, holder, make_repo, message, mission, open_postgres

from fracta import atomic
from fracta.errors import AgentExists, AgentNotFound, CorruptRecord, IdempotencyConflict
from fracta.records import Status
from fracta.repo import Repo
from fracta.store.base import EVENTS, INBOX, MISSIONS, Store
from fracta.store.files import FileStore

BACKENDS = ["files", "postgres"]
FOREVER = lambda: 3600.0  # noqa: E731 - a redelivery timeout no test reaches
WAIT = 30.0  # seconds: generous bound for anything that must happen eventually


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "project")


@pytest.fixture
def store(backend: str, repo: Repo, request: pytest.FixtureRequest) -> Iterator[Store]:
    opened = FileStore(repo) if backend == "files" else open_postgres(repo, request.getfixturevalue("pg_url"))
    try:
        yield opened
    finally:
        opened.close()


def corrupt_agent(store: Store, repo: Repo, name: str) -> None:
    """Damage `name`'s stored record the way this backend can be damaged."""
    if store.backend == "postgres":
        db = store.db  # type: ignore[attr-defined]
        db.run(lambda c: c.execute("UPDATE agents SET record = '{\"schema\": 99}' WHERE name = %s", (name,)))
    else:
        repo.agent_file(name, "agent.json").write_text("{not json")


def eventually(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- agents ---------------------------------------------------------------------------------------


def test_a_created_agent_is_listed_loaded_and_named_in_creation_order(store: Store) -> None:
    store.agents.create(agent("b-one"), "tok-b")
    store.agents.create(agent("a-two"), "tok-a")
    assert store.agents.exists("b-one") and not store.agents.exists("zed")
    assert store.agents.load("b-one").name == "b-one"
    everyone, problems = store.agents.list_all()
    assert [a.name for a in everyone] == ["b-one", "a-two"] and problems == []
    assert store.agents.names() == ["a-two", "b-one"]


def test_names_sort_character_by_character_whatever_the_locale(store: Store) -> None:
    for name in ("ba", "b-a", "b9"):
        store.agents.create(agent(name), f"tok-{name}")
    assert store.agents.names() == ["b-a", "b9", "ba"]


def test_creating_a_taken_name_is_refused_and_keeps_the_first(store: Store) -> None:
    store.agents.create(agent("one", intent="first"), "tok-1")
    with pytest.raises(AgentExists):
        store.agents.create(agent("one", intent="second"), "tok-2")
    assert store.agents.load("one").intent == "first"
    assert store.tokens.resolve("tok-1") == "one" and store.tokens.resolve("tok-2") is None


def test_a_missing_agent_is_not_found_by_every_operation(store: Store) -> None:
    with pytest.raises(AgentNotFound):
        store.agents.load("ghost")
    with pytest.raises(AgentNotFound), store.agents.holding("ghost"):
        pass
    with pytest.raises(AgentNotFound):
        store.agents.remove("ghost")
    assert store.agents.last_activity("ghost") is None


def test_a_corrupt_record_is_reported_and_never_hides_the_others(store: Store, repo: Repo) -> None:
    store.agents.create(agent("good"), "tok-g")
    store.agents.create(agent("bad"), "tok-b")
    corrupt_agent(store, repo, "bad")
    with pytest.raises(CorruptRecord):
        store.agents.load("bad")
    everyone, problems = store.agents.list_all()
    assert [a.name for a in everyone] == ["good"] and len(problems) == 1


def test_holding_yields_the_fresh_record_and_write_stamps_it(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    before = store.agents.load("one")
    time.sleep(0.002)
    with store.agents.holding("one") as current:
        assert current == before
        written = store.agents.write(current.__class__(**{**current.__dict__, "status": Status.RUNNING}))
    assert written.updated_at >= before.updated_at
    assert store.agents.load("one") == written and written.status is Status.RUNNING


def test_a_second_holder_waits_and_then_sees_the_first_holders_write(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    inside, seen = threading.Event(), []

    def second() -> None:
        inside.wait()
        with store.agents.holding("one") as current:
            seen.append(current.intent)

    thread = threading.Thread(target=second)
    thread.start()
    with store.agents.holding("one") as current:
        inside.set()
        time.sleep(0.3)  # the second holder is waiting meanwhile (if it were let in, it would see "")
        store.agents.write(current.__class__(**{**current.__dict__, "intent": "changed"}))
    thread.join(WAIT)
    assert seen == ["changed"]


def test_while_holding_an_agent_its_own_writes_are_seen_and_nothing_waits_for_the_hold(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    with store.agents.holding("one") as current:
        store.agents.write(current.__class__(**{**current.__dict__, "intent": "mine"}))
        assert store.agents.load("one").intent == "mine" and store.agents.exists("one")
        time.sleep(0.25)
        store.agents.touch("one")  # the same thread: no wait on its own hold
        assert store.agents.last_activity("one") is not None
        store.mail.deliver(message("one"), None)
        other = threading.Thread(target=lambda: store.agents.touch("one"))  # another: no wait either
        other.start()
        other.join(WAIT)
        assert not other.is_alive()
        store.supervise("cp", 60.0)
        store.adopt("cp", "one", 60.0)
    assert store.agents.load("one").intent == "mine" and store.mail.unread_count("one") == 1


def test_what_was_written_before_the_hold_failed_is_kept(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    with pytest.raises(RuntimeError), store.agents.holding("one") as current:
        store.agents.write(current.__class__(**{**current.__dict__, "intent": "kept"}))
        raise RuntimeError("the caller failed after writing")
    assert store.agents.load("one").intent == "kept"


def test_an_agent_removed_while_held_by_its_remover_is_gone(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    with store.agents.holding("one"):
        store.agents.remove("one")
    assert not store.agents.exists("one")


def test_removing_an_agent_takes_its_inbox_and_token_along(store: Store) -> None:
    store.agents.create(agent("one"), "tok-one")
    store.mail.deliver(message("one"), None)
    store.agents.remove("one")
    assert not store.agents.exists("one")
    assert store.tokens.resolve("tok-one") is None
    store.agents.create(agent("one"), "tok-again")  # the name is free again, with an empty inbox
    assert store.mail.unread_count("one") == 0


def test_touch_notes_activity(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    first = store.agents.last_activity("one")
    assert first is not None
    time.sleep(0.25)  # past the coalescing resolution
    store.agents.touch("one")
    later = store.agents.last_activity("one")
    assert later is not None and later > first


# --- mail -----------------------------------------------------------------------------------------


def read(store: Store, name: str, held_by: str, acked_by: tuple[str, int] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return store.mail.read(
        name,
        include_read=bool(kw.get("include_read", False)),
        acked_by=acked_by,
        held_by=held_by,
        redeliver_after=kw.get("redeliver_after", FOREVER),  # type: ignore[arg-type]
    )


def test_messages_are_handed_out_oldest_first_and_once(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    sent = [store.mail.deliver(message("one", f"m{i}"), None) for i in range(3)]
    assert store.mail.unread_count("one") == 3
    first = read(store, "one", holder())
    assert [m.body for m in first.messages] == ["m0", "m1", "m2"] and first.claimed == 3
    assert all(not m.read for m in first.messages) and [m.id for m in first.messages] == [m.id for m in sent]
    assert store.mail.unread_count("one") == 0
    assert read(store, "one", holder()).messages == []  # another reader gets nothing held


def test_a_repeated_read_gets_the_same_messages_and_its_ack_marks_them_read(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.mail.deliver(message("one", "hi"), None)
    h1 = holder()
    first = read(store, "one", h1)
    again = read(store, "one", h1)  # the same call repeated: its result was lost
    assert [m.body for m in again.messages] == ["hi"] and again.claimed == 0
    second = read(store, "one", holder(), acked_by=(h1, again.stamp))
    assert second.messages == [] and second.acked == 1
    shown = read(store, "one", holder(), include_read=True)
    assert [(m.body, m.read) for m in shown.messages] == [("hi", True)]
    assert first.stamp <= again.stamp


def test_a_late_copy_of_an_acknowledged_read_is_refused(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    h0, h1 = holder(), holder()
    r0 = read(store, "one", h0)
    store.mail.deliver(message("one"), None)
    r1 = read(store, "one", h1, acked_by=(h0, r0.stamp))
    read(store, "one", holder(), acked_by=(h1, r1.stamp))
    with pytest.raises(IdempotencyConflict):
        read(store, "one", h1, acked_by=(h0, r0.stamp))


def test_what_a_holder_got_after_its_acknowledged_stamp_goes_to_the_next_read(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    h1 = holder()
    store.mail.deliver(message("one", "early"), None)
    r1 = read(store, "one", h1)
    store.mail.deliver(message("one", "late"), None)
    read(store, "one", h1)  # a duplicate of r1, later: claims "late" under h1 after r1's stamp
    r2 = read(store, "one", holder(), acked_by=(h1, r1.stamp))
    assert [m.body for m in r2.messages] == ["late"] and r2.acked == 1


def test_held_messages_go_to_another_reader_after_the_timeout_only(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.mail.deliver(message("one", "x"), None)
    read(store, "one", holder())
    assert read(store, "one", holder()).messages == []
    again = read(store, "one", holder(), redeliver_after=lambda: 0.0)
    assert [m.body for m in again.messages] == ["x"] and not again.messages[0].read


def test_acknowledge_marks_read_and_retires_the_holder(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.mail.deliver(message("one"), None)
    store.mail.deliver(message("one"), None)
    h = holder()
    got = read(store, "one", h)
    assert store.mail.acknowledge("one", (h, got.stamp)) == 2
    assert store.mail.acknowledge("one", (h, got.stamp)) == 0
    with pytest.raises(IdempotencyConflict):
        read(store, "one", h, acked_by=(holder(), 0))
    assert [m.read for m in read(store, "one", holder(), include_read=True).messages] == [True, True]


def test_acknowledge_run_marks_read_what_was_handed_out_since(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.mail.deliver(message("one", "before"), None)
    read(store, "one", holder())
    since = time.time_ns()
    store.mail.deliver(message("one", "during"), None)
    read(store, "one", holder())
    assert store.mail.acknowledge_run("one", since) == 1
    shown = read(store, "one", holder(), include_read=True)
    assert sorted((m.body, m.read) for m in shown.messages) == [("before", True), ("during", True)]
    # "before" is still held by its reader (shown read=True as another's), "during" is read


def test_a_duplicate_key_stores_once_per_inbox_within_its_window(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.agents.create(agent("two"), "tok2")
    first = store.mail.deliver(message("one", "same", key="k1"), None)
    again = store.mail.deliver(message("one", "same", key="k1"), None)
    assert again.duplicate and again.id == first.id and not first.duplicate
    assert not store.mail.deliver(message("two", "same", key="k1"), None).duplicate  # another inbox
    assert store.mail.unread_count("one") == 1
    within = store.mail.deliver(message("one", "same", key="k2"), 600.0)
    assert store.mail.deliver(message("one", "same", key="k2"), 600.0).id == within.id
    past = store.mail.deliver(message("one", "same", key="k2"), 0.0)  # the window has passed
    assert not past.duplicate and past.id != within.id
    assert store.mail.unread_count("one") == 3


def test_the_chessmaster_has_an_inbox_and_unknown_inboxes_do_not_exist(store: Store) -> None:
    store.mail.deliver(message("chessmaster", "report", sender="one"), None)
    assert [m.body for m in read(store, "chessmaster", holder()).messages] == ["report"]


def test_an_inbox_that_does_not_exist_is_agent_not_found(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.agents.remove("one")
    for name in ("one", "ghost"):
        with pytest.raises(AgentNotFound):
            store.mail.deliver(message(name), None)
        with pytest.raises(AgentNotFound):
            read(store, name, holder())


def test_unread_since_sees_only_messages_sent_later_and_not_yet_handed_out(store: Store) -> None:
    store.agents.create(agent("one"), "tok")
    store.mail.deliver(message("one"), None)
    since = time.time_ns()
    assert not store.mail.unread_since("one", since)
    store.mail.deliver(message("one"), None)
    assert store.mail.unread_since("one", since)
    read(store, "one", holder())
    assert not store.mail.unread_since("one", since)


# --- missions -------------------------------------------------------------------------------------


def test_missions_are_pending_and_claimed_oldest_first(store: Store) -> None:
    queued = [store.missions.enqueue(mission(f"m{i}")) for i in range(4)]
    assert all(m.id for m in queued) and len({m.id for m in queued}) == 4
    pending, problems = store.missions.pending()
    assert [m.name for m in pending] == ["m0", "m1", "m2", "m3"] and problems == []
    assert pending[0].args == ["--x"] and pending[0].prompt == "go"
    got = store.missions.claim("cp-a", 60.0, 2)
    assert [m.name for m in got] == ["m0", "m1"]
    assert [m.name for m in store.missions.claim("cp-b", 60.0, 5)] == ["m2", "m3"]
    assert store.missions.claim("cp-c", 60.0, 5) == [] and store.missions.pending()[0] == []


def test_a_released_mission_is_pending_again_and_a_removed_one_is_gone(store: Store) -> None:
    first, second = store.missions.enqueue(mission("a")), store.missions.enqueue(mission("b"))
    claimed = store.missions.claim("cp", 60.0, 2)
    store.missions.release(claimed[0])
    assert [m.name for m in store.missions.pending()[0]] == ["a"]
    store.missions.remove(claimed[1])
    store.missions.remove(claimed[1])  # no error
    store.missions.remove(first)
    assert store.missions.pending()[0] == [] and store.missions.claim("cp", 60.0, 5) == []
    assert second.name == "b"


def test_a_claim_whose_lease_ran_out_is_pending_again_and_renew_keeps_it(store: Store) -> None:
    store.missions.enqueue(mission("short"))
    store.missions.enqueue(mission("kept"))
    store.missions.claim("cp-a", 0.3, 1)
    store.missions.claim("cp-b", 0.3, 1)
    assert store.missions.renew("cp-b", 3600.0) == 1
    assert store.missions.renew("cp-none", 3600.0) == 0
    eventually(lambda: store.missions.pending()[0], "the short lease to run out")
    taken = store.missions.claim("cp-c", 60.0, 5)
    assert [m.name for m in taken] == ["short"]


def test_a_claim_renewed_before_it_is_removed_or_released_is_still_the_same_claim(store: Store) -> None:
    store.missions.enqueue(mission("done"))
    store.missions.enqueue(mission("back"))
    done, back = store.missions.claim("cp", 0.5, 2)
    store.missions.renew("cp", 0.5)
    store.missions.remove(done)
    store.missions.release(back)
    assert [m.name for m in store.missions.pending()[0]] == ["back"]
    time.sleep(0.6)  # past the renewed lease: a claim left behind would be pending again now
    assert [m.name for m in store.missions.pending()[0]] == ["back"]


def test_drop_agent_forgets_its_missions(store: Store) -> None:
    store.missions.enqueue(mission("a"))
    store.missions.enqueue(mission("b"))
    store.missions.enqueue(mission("a"))
    store.missions.drop_agent("a")
    assert [m.name for m in store.missions.pending()[0]] == ["b"]


def test_one_scheduler_at_a_time(store: Store) -> None:
    inside, order = threading.Event(), []

    def second() -> None:
        inside.wait()
        with store.missions.scheduling():
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with store.missions.scheduling():
        inside.set()
        time.sleep(0.3)
        order.append("first")
    thread.join(WAIT)
    assert order == ["first", "second"]


# --- events ---------------------------------------------------------------------------------------


def test_events_are_read_in_order_from_any_cursor(store: Store) -> None:
    assert list(store.events.read(0, None)) == [] and store.events.tail(3) == []
    for i in range(5):
        store.events.append({"event": "e", "i": i})
    every = list(store.events.read(0, None))
    assert [e.data["i"] for e in every] == [0, 1, 2, 3, 4]
    assert [e.data["i"] for e in store.events.read(every[1].end, None)] == [2, 3, 4]
    assert [e.data["i"] for e in store.events.read(every[1].end, 2)] == [2, 3]
    assert list(store.events.read(every[-1].end, None)) == []
    assert [e.data["i"] for e in store.events.tail(2)] == [3, 4]
    assert [e.end for e in store.events.tail(2)] == [e.end for e in every[-2:]]


def test_a_follower_never_misses_an_event_appended_concurrently(store: Store) -> None:
    writers, each = 4, 50

    def write(w: int) -> None:
        for i in range(each):
            store.events.append({"event": "e", "w": w, "i": i})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    seen: list[tuple[int, int]] = []
    cursor = 0
    deadline = time.monotonic() + WAIT
    while len(seen) < writers * each and time.monotonic() < deadline:
        for event in store.events.read(cursor, None):
            seen.append((event.data["w"], event.data["i"]))
            cursor = event.end
    for t in threads:
        t.join(WAIT)
    assert sorted(seen) == sorted((w, i) for w in range(writers) for i in range(each))
    for w in range(writers):
        assert [i for ww, i in seen if ww == w] == list(range(each))


# --- tokens, last action, supervision, subscriptions ----------------------------------------------


def test_tokens_resolve_to_their_owner_until_the_agent_is_removed(store: Store, repo: Repo) -> None:
    store.agents.create(agent("one"), "tok-one")
    assert store.tokens.agent("one") == "tok-one"
    assert store.tokens.chessmaster() == repo.token_path.read_text().strip()
    assert store.tokens.resolve(store.tokens.chessmaster()) == "chessmaster"
    assert store.tokens.resolve("tok-one") == "one"
    assert store.tokens.resolve("nope") is None and store.tokens.resolve("") is None
    store.agents.remove("one")
    assert store.tokens.resolve("tok-one") is None
    store.agents.create(agent("one"), "tok-two")  # the same name again: only its new token works
    assert store.tokens.resolve("tok-one") is None and store.tokens.resolve("tok-two") == "one"


def test_a_replaced_token_file_stops_its_old_token_at_once_though_resolved_tokens_are_remembered(repo: Repo) -> None:
    store = FileStore(repo)
    old = store.tokens.chessmaster()
    store.agents.create(agent("one"), "tok-one")
    for _ in range(2):  # the second time from what the first remembered
        assert store.tokens.resolve(old) == "chessmaster" and store.tokens.resolve("tok-one") == "one"
    atomic.write_text(repo.token_path, "rotated\n", mode=0o600)
    atomic.write_text(repo.agent_file("one", "token"), "tok-new\n", mode=0o600)
    assert store.tokens.resolve(old) is None and store.tokens.resolve("tok-one") is None
    assert store.tokens.resolve("rotated") == "chessmaster" and store.tokens.resolve("tok-new") == "one"


def test_the_last_action_is_remembered(store: Store) -> None:
    assert store.last_action() is None
    store.record_action("spawned a", "2026-01-01T00:00:00.000Z")
    store.record_action("merged a", "2026-01-01T00:00:01.000Z")
    assert store.last_action() == ("merged a", "2026-01-01T00:00:01.000Z")


def test_supervision_is_exclusive_until_the_lease_runs_out(store: Store) -> None:
    store.agents.create(agent("one"), "t1")
    store.agents.create(agent("two"), "t2")
    first = store.supervise("cp-a", 0.5)
    if store.backend == "files":
        assert first is None
        return
    assert first == {"one", "two"}
    assert store.supervise("cp-b", 60.0) == frozenset()
    store.adopt("cp-b", "two", 60.0)
    assert store.supervise("cp-a", 0.5) == {"one"}
    eventually(lambda: store.supervise("cp-b", 60.0) == {"one", "two"}, "cp-a's lease to run out")
    assert store.supervise("cp-a", 60.0) == frozenset()
    with pytest.raises(AgentNotFound):
        store.adopt("cp-a", "ghost", 60.0)


def test_subscribers_hear_of_missions_events_and_messages(store: Store) -> None:
    heard: list[str] = []
    stop = store.subscribe(heard.append)
    if stop is None:
        assert store.backend == "files"
        return
    try:
        store.agents.create(agent("one"), "tok")
        store.missions.enqueue(mission("one"))
        store.events.append({"event": "x"})
        store.mail.deliver(message("one"), None)
        store.missions.wake()
        eventually(lambda: {MISSIONS, EVENTS, INBOX + "one"} <= set(heard), "the notifications")
    finally:
        stop()
