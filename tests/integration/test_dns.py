"""
Routing (issue 4): MX resolution with c-ares against dnsmasq, through the
test tool wm-resolve (build-san/tests/tools or build/tests/tools; not
installed).  Cases: MX preference, equal preferences shuffled, implicit MX,
null MX, NXDOMAIN, MX self-detection by name and by listen address,
smarthost by literal and by name, temporary DNS failure.
"""

import os
import re
import subprocess
import tempfile

import pytest

from conftest import REPO, SAN_MARKERS, free_port
from dnsfix import dns_factory  # noqa: F401  (fixture)


def find_resolve():
    for d in ("build-san", "build"):
        p = os.path.join(REPO, d, "tests", "tools", "wm-resolve")
        if os.access(p, os.X_OK):
            return p
    pytest.fail("wm-resolve not built (build-san/ or build/tests/tools)")


LINE_RE = re.compile(r'^(\S+) status=(\w+) why="(.*)"$')
HOST_RE = re.compile(r"^  host=(\S+) pref=(\d+) addrs=(\S*)$")

# the records every test serves
MX = [
    ("d.test", "mx2.d.test", 20),          # given out of order on purpose
    ("d.test", "mx1.d.test", 10),
    ("eq.test", "mx1.d.test", 10),
    ("eq.test", "mx2.d.test", 10),
    ("null.test", ".", 0),
    ("nohost.test", "missing.test", 10),
    ("self-second.test", "mx1.d.test", 10),
    ("self-second.test", "mx.test", 20),
    ("self-second.test", "mx3.d.test", 30),
    ("self-best.test", "mx.test", 10),
    ("self-best.test", "mx2.d.test", 20),
    ("self-addr.test", "loop.d.test", 10),
    ("self-addr.test", "mx2.d.test", 20),
    ("relay.test", "mx3.d.test", 10),
    ("relay2.test", "mx1.d.test", 10),
]
HOSTS = [
    ("mx1.d.test", "127.0.0.2"),
    ("mx2.d.test", "127.0.0.3", "::1"),
    ("mx3.d.test", "127.0.0.4"),
    ("a.test", "127.0.0.6"),
    ("loop.d.test", "127.0.0.1"),
    ("relay2.test", "127.0.0.7"),
]


@pytest.fixture
def dns(dns_factory):  # noqa: F811
    return dns_factory(mx=MX, hosts=HOSTS)


class Result:
    def __init__(self, status, why, hosts):
        self.status = status
        self.why = why
        self.hosts = hosts      # [(name, pref, [addr, ...])]

    def names(self):
        return [h[0] for h in self.hosts]

    def __repr__(self):
        return "Result(%s, %r, %r)" % (self.status, self.why, self.hosts)


def resolve(config, *domains):
    """Run wm-resolve; returns [(domain, Result)] in output order."""
    with tempfile.TemporaryDirectory(prefix="wm-resolve-") as d:
        conf = os.path.join(d, "waymark.conf")
        with open(conf, "w") as f:
            for k, v in config.items():
                f.write("%s = %s\n" % (k, v))
        p = subprocess.run([find_resolve(), "-f", conf] + list(domains),
                           capture_output=True, text=True, timeout=120)
    for m in SAN_MARKERS:
        assert m not in p.stderr, p.stderr
    assert p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr)
    out = []
    for line in p.stdout.splitlines():
        m = LINE_RE.match(line)
        if m:
            out.append((m.group(1), Result(m.group(2), m.group(3), [])))
            continue
        m = HOST_RE.match(line)
        assert m and out, "unexpected output line %r" % line
        addrs = m.group(3).split(",") if m.group(3) else []
        out[-1][1].hosts.append((m.group(1), int(m.group(2)), addrs))
    assert sorted(o[0] for o in out) == sorted(domains), p.stdout
    return out


def resolve1(config, domain):
    return resolve(config, domain)[0][1]


def base_config(dns, **kw):
    c = {"hostname": "mx.test", "listen": "127.0.0.1:%d" % free_port(),
         "smtp_port": "2525", "dns": dns.server}
    c.update(kw)
    return c


def test_mx_preference_order(dns):
    r = resolve1(base_config(dns), "d.test")
    assert r.status == "ok", r
    assert r.hosts == [("mx1.d.test", 10, ["127.0.0.2:2525"]),
                       ("mx2.d.test", 20, ["127.0.0.3:2525", "[::1]:2525"])]
    assert dns.queries("d.test") == ["MX"]


def test_smtp_port_default_25(dns):
    c = base_config(dns)
    del c["smtp_port"]
    r = resolve1(c, "d.test")
    assert r.hosts[0][2] == ["127.0.0.2:25"]


def test_equal_preferences_shuffled(dns):
    out = resolve(base_config(dns), *(["eq.test"] * 30))
    orders = set()
    for _, r in out:
        assert r.status == "ok", r
        assert sorted(r.names()) == ["mx1.d.test", "mx2.d.test"]
        assert [h[1] for h in r.hosts] == [10, 10]
        orders.add(tuple(r.names()))
    assert len(orders) == 2, "30 lookups, always the order %r" % orders


def test_implicit_mx(dns):
    r = resolve1(base_config(dns), "a.test")
    assert r.status == "ok", r
    assert r.hosts == [("a.test", 0, ["127.0.0.6:2525"])]


def test_null_mx(dns):
    r = resolve1(base_config(dns), "null.test")
    assert r.status == "nullmx", r
    assert "null MX" in r.why
    assert r.hosts == []


def test_nxdomain(dns):
    r = resolve1(base_config(dns), "nowhere.test")
    assert r.status == "nxdomain", r
    assert r.hosts == []


def test_mx_without_address(dns):
    r = resolve1(base_config(dns), "nohost.test")
    assert r.status == "nohost", r
    assert r.hosts == []


def test_self_mx_by_name_less_preferred_only(dns):
    r = resolve1(base_config(dns), "self-second.test")
    assert r.status == "ok", r
    assert r.names() == ["mx1.d.test"]


def test_self_mx_by_name_best_is_loop(dns):
    r = resolve1(base_config(dns), "self-best.test")
    assert r.status == "loop", r
    assert r.hosts == []


def test_self_mx_hostname_case_insensitive(dns):
    r = resolve1(base_config(dns, hostname="MX.Test"), "self-best.test")
    assert r.status == "loop", r


def test_self_mx_by_listen_address(dns):
    port = free_port()
    c = base_config(dns, hostname="other.test",
                    listen="127.0.0.1:%d" % port, smtp_port=str(port))
    r = resolve1(c, "self-addr.test")
    assert r.status == "loop", r
    # same address, another port: not us (loopback next hops are normal here)
    c["smtp_port"] = str(port + 1 if port < 65535 else port - 1)
    r = resolve1(c, "self-addr.test")
    assert r.status == "ok", r
    assert r.names() == ["loop.d.test", "mx2.d.test"]


def test_self_mx_wildcard_listen(dns):
    port = free_port()
    c = base_config(dns, hostname="other.test", listen="0.0.0.0:%d" % port,
                    smtp_port=str(port))
    r = resolve1(c, "d.test")
    assert r.status == "loop", r


def test_smarthost_literal_bypasses_dns(dns):
    c = base_config(dns, smarthost="[127.0.0.5]:2600")
    r = resolve1(c, "d.test")
    assert r.status == "ok", r
    assert r.hosts == [("127.0.0.5", 0, ["127.0.0.5:2600"])]
    assert dns.queries("d.test") == []
    assert dns.queries("127.0.0.5") == []


def test_smarthost_bracketed_name_no_mx(dns):
    r = resolve1(base_config(dns, smarthost="[relay2.test]:2601"), "d.test")
    assert r.status == "ok", r
    assert r.hosts == [("relay2.test", 0, ["127.0.0.7:2601"])]
    assert "MX" not in dns.queries("relay2.test")
    assert dns.queries("d.test") == []


def test_smarthost_by_name_uses_mx(dns):
    r = resolve1(base_config(dns, smarthost="relay.test:2602"), "d.test")
    assert r.status == "ok", r
    assert r.hosts == [("mx3.d.test", 10, ["127.0.0.4:2602"])]
    assert dns.queries("relay.test") == ["MX"]
    assert dns.queries("d.test") == []


def test_smarthost_name_default_port(dns):
    r = resolve1(base_config(dns, smarthost="relay.test"), "d.test")
    assert r.status == "ok", r
    assert r.hosts == [("mx3.d.test", 10, ["127.0.0.4:2525"])]


def test_temp_failure_no_server():
    dead = free_port()      # nothing listens there (UDP: port unreachable)
    c = {"hostname": "mx.test", "listen": "127.0.0.1:%d" % free_port(),
         "dns": "127.0.0.1:%d" % dead}
    r = resolve1(c, "d.test")
    assert r.status == "temp", r
    assert r.hosts == []
    assert r.why


def test_several_domains_one_run(dns):
    out = dict(resolve(base_config(dns), "d.test", "null.test",
                       "nowhere.test", "a.test", "[127.0.0.9]"))
    assert out["d.test"].status == "ok"
    assert out["null.test"].status == "nullmx"
    assert out["nowhere.test"].status == "nxdomain"
    assert out["a.test"].status == "ok"
    assert out["[127.0.0.9]"].hosts == [("127.0.0.9", 0, ["127.0.0.9:2525"])]
