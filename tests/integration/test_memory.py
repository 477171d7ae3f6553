"""Memory footprint settings: db_cache (the Berkeley DB cache of the queue
store) is printed by -n, checked at load, and sizes the environment the
daemon opens."""

import os

from conftest import assert_reply, make_message, parse_config_dump, run_waymarkd


def region_bytes(daemon):
    """Total size of the daemon's mappings of the Berkeley DB region files
    (spool/__db.NNN); the cache region's follows db_cache."""
    total = 0
    with open("/proc/%d/maps" % daemon.pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.basename(fields[5]).startswith("__db."):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                total += hi - lo
    return total


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
    small_regions = region_bytes(small)

    large = daemon_factory(config={"db_cache": "16m"})
    large_regions = region_bytes(large)
    assert small_regions > 0 and large_regions > 0
    # the cache region follows db_cache: 16m against 256k
    assert large_regions - small_regions >= 12 * 1024 * 1024, \
        (small_regions, large_regions)
    assert small_regions < 3 * 1024 * 1024, small_regions
