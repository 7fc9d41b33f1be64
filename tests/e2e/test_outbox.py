"""The outbox through the real binary: commit order, crash safety, a frozen
bus, two relays on one PostgreSQL."""
import json
import os
import signal
import threading
import time

from harness import (NatsClient, NatsServer, PgServer, embedded_nats_client, margin,
                     stream_messages, wait_until)

SUBJECT = "ops.health.outboxtest"


def write(node, count, per_tx=50, writer="w", timeout=300):
    r = node.post("/v1/test/outbox", {"count": count, "per_tx": per_tx, "writer": writer},
                  headers=node.auth(), timeout=timeout)
    assert r.status == 200, r
    return r.json()


def status(node):
    return node.get("/v1/test/outbox/status", headers=node.auth()).json()


def drained(node, total):
    s = status(node)
    return s["pending"] == 0 and s["published"] >= total


def check_stream(client, expected_by_writer):
    msgs = stream_messages(client, "DAGI_EVENTS", SUBJECT)
    ids = [m[2]["id"] for m in msgs]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    per_writer = {}
    for _, _, env in msgs:
        d = env["data"]
        per_writer.setdefault(d["writer"], []).append(d["n"])
    for writer, n in expected_by_writer.items():
        assert per_writer.get(writer) == list(range(n)), \
            f"{writer}: {len(per_writer.get(writer, []))} events, out of order or missing"
    return msgs


def test_outbox_publishes_everything_in_order(ctx):
    n = ctx.node()
    write(n, 2000, per_tx=50)
    wait_until(lambda: drained(n, 2000), 30, "the relay to drain the outbox")
    c = embedded_nats_client(n)
    check_stream(c, {"w": 2000})
    c.close()


def test_kill_9_while_relaying_loses_and_duplicates_nothing(ctx):
    n = ctx.node(config="store:\n  outbox:\n    batch: 200\n")
    # Stop the relay from keeping up by freezing the bus while writing.
    pid = n.get("/v1/admin/status", headers=n.auth()).json()["bus"]["nats_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        write(n, 10000, per_tx=100)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: status(n)["published"] > 0, 30, "the relay to start publishing")
    n.kill()  # mid-relay: some rows published and marked, some published only, some neither
    n.start()
    wait_until(lambda: drained(n, 10000), 60, "the restarted relay to drain the outbox")
    c = embedded_nats_client(n)
    check_stream(c, {"w": 10000})
    c.close()


def test_frozen_bus_rows_wait_then_arrive_in_order(ctx):
    n = ctx.node()
    pid = n.get("/v1/admin/status", headers=n.auth()).json()["bus"]["nats_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        write(n, 500, per_tx=10)
        time.sleep(1)
        assert status(n)["pending"] == 500  # nothing marked while the bus is frozen
        time.sleep(10 - 1)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: drained(n, 500), 60, "the rows to flush after the freeze")
    c = embedded_nats_client(n)
    check_stream(c, {"w": 500})
    c.close()


def test_postgres_concurrent_writers_keep_commit_order(ctx):
    pg = PgServer()
    try:
        n = ctx.node(config=f"store:\n  url: {pg.url}\n")
        threads = [threading.Thread(target=write, args=(n, 500), kwargs={"per_tx": 5, "writer": w})
                   for w in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: drained(n, 1000), 60, "the relay to drain")
        c = embedded_nats_client(n)
        msgs = check_stream(c, {"a": 500, "b": 500})
        c.close()
        # The real commit order, as PostgreSQL recorded it (track_commit_timestamp):
        # every event carries its transaction id.
        xids = []
        for _, _, env in msgs:
            if not xids or xids[-1] != env["data"]["xid"]:
                xids.append(env["data"]["xid"])
        assert len(xids) == len(set(xids)), "a transaction's events are split in the stream"
        stamps = pg.psql("SELECT x, pg_xact_commit_timestamp(x::xid) FROM unnest(ARRAY[" +
                         ",".join(f"'{x}'" for x in xids) + "]::text[]) AS x", db="dagi")
        committed = dict(line.split("|", 1) for line in stamps.strip().splitlines())
        commit_order = sorted(xids, key=lambda x: committed[x])
        assert xids == commit_order, "stream order differs from commit order"
        # Both writers really interleaved.
        writers = [env["data"]["writer"] for _, _, env in msgs]
        switches = sum(1 for i in range(1, len(writers)) if writers[i] != writers[i - 1])
        assert switches > 2, "the writers did not interleave; the test proves nothing"
    finally:
        for node in ctx.nodes:
            node.stop()
        pg.stop()


def test_two_relays_on_one_postgres(ctx):
    pg = PgServer()
    nats = NatsServer()
    try:
        conf = (f"bus:\n  url: {nats.url}\nstore:\n  url: {pg.url}\n"
                "  outbox:\n    lease: 2s\n    batch: 100\n")
        a = ctx.node(config="node:\n  name: a\n" + conf)
        wait_until(lambda: 'dagi_outbox_relay_leader 1' in a.get("/metrics").body.decode(), 10,
                   "the first relay to lead")
        b = ctx.node(config="node:\n  name: b\n" + conf)
        time.sleep(1)
        assert 'dagi_outbox_relay_leader 0' in b.get("/metrics").body.decode()
        # Freeze the bus so rows pile up, then kill the leader mid-relay.
        os.kill(nats.proc.pid, signal.SIGSTOP)
        try:
            write(a, 3000, per_tx=100)
        finally:
            os.kill(nats.proc.pid, signal.SIGCONT)
        wait_until(lambda: status(b)["published"] > 0, 30, "publishing to start")
        a.kill()
        t0 = time.monotonic()
        wait_until(lambda: 'dagi_outbox_relay_leader 1' in b.get("/metrics").body.decode(), 10,
                   "the standby to take over")
        assert time.monotonic() - t0 < margin(2 + 3)  # lease 2s, checked every lease/3
        wait_until(lambda: drained(b, 3000), 60, "the new leader to drain")
        c = NatsClient(nats.url)
        check_stream(c, {"w": 3000})
        c.close()
    finally:
        for node in ctx.nodes:
            node.stop()
        nats.stop()
        pg.stop()


def test_published_rows_are_purged_after_retention(ctx):
    n = ctx.node(config="store:\n  outbox:\n    retention: 1h\n")
    write(n, 100, per_tx=10)
    wait_until(lambda: drained(n, 100), 30, "the relay to drain")
    assert status(n)["published"] == 100
    # Two hours later by the business clock, the next round purges them.
    n.post("/v1/test/clock", {"offset_ms": 2 * 3600 * 1000}, headers=n.auth())
    wait_until(lambda: status(n)["published"] == 0, 10, "the purge")


def test_db_command_reports_and_migrates(ctx):
    import tempfile
    from harness import run_dagi
    d = tempfile.mkdtemp(prefix="dagi-db-")
    rc, out, err = run_dagi("db", "status", "--data-dir", d)
    assert rc == 0, err
    assert "schema version: 0 of" in out and "pending migrations: 0" not in out, out
    rc, out, err = run_dagi("db", "migrate", "--data-dir", d)
    assert rc == 0, err
    rc, out, err = run_dagi("db", "status", "--data-dir", d)
    assert "pending migrations: 0" in out, out
    rc, _, err = run_dagi("db", "frobnicate")
    assert rc == 2
    rc, _, err = run_dagi("db", "status", "--data-dir", d, env={"DAGI_STORE_URL": "postgres://nobody@127.0.0.1:1/x"})
    assert rc == 1 and err.strip(), err
