"""Memory footprint settings: db_cache (the Berkeley DB cache of the queue
store) is printed by -n, checked at load, and sizes the environment the
daemon opens."""

import os
import re

from conftest import assert_reply, make_message, parse_config_dump, run_waymarkd


def cache_bytes(daemon):
    """The cache of the daemon's Berkeley DB environment, as it reports
    it at start ("queue: store opened: cache N KiB"; Berkeley DB adds its
    own overhead to db_cache)."""
    m = re.search(r"queue: store opened: cache (\d+) KiB, environment "
                  r"private to this process", daemon.log_text())
    assert m, daemon.log_text()
    return int(m.group(1)) * 1024


def test_db_cache_printed_and_checked(daemon_factory, tmp_path):
    d = daemon_factory(start=False)
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    assert parse_config_dump(p.out)["db_cache"] == "1m", p.out

    d.config["db_cache"] = "256k"
    d.write_config()
    p = run_waymarkd("-n", "-f", d.conf)
    assert p.returncode == 0, p.err
    assert parse_config_dump(p.out)["db_cache"] == "256k", p.out

    for bad, why in (("64k", 'below minimum'), ("2g", "invalid size"),
                     ("lots", "invalid size")):
        path = tmp_path / "bad.conf"
        path.write_text("# bad\ndb_cache = %s\n" % bad)
        p = run_waymarkd("-n", "-f", str(path))
        assert p.returncode == 1, (bad, p.out)
        assert "%s:2: db_cache: " % path in p.err and why in p.err, (bad, p.err)


def test_small_db_cache_runs_and_sizes_the_environment(daemon_factory):
    small = daemon_factory(config={"db_cache": "256k"})
    with small.connect() as c:
        c.ehlo()
        r = c.mail_transaction("a@example.org", ["u@example.org"],
                               make_message(subject="small cache"))
        assert_reply(r, 250)
    small.wait_mails("u@example.org", 1, timeout=20)
    small_cache = cache_bytes(small)

    large = daemon_factory(config={"db_cache": "16m"})
    large_cache = cache_bytes(large)
    # the cache follows db_cache: 16m against 256k
    assert large_cache - small_cache >= 12 * 1024 * 1024, \
        (small_cache, large_cache)
    assert small_cache < 3 * 1024 * 1024, small_cache
    # the regions are the process's memory: no region files in the spool
    assert not [n for n in os.listdir(small.spool) if n.startswith("__db.")]
