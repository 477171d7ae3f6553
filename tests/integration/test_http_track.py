"""The sender's tracking view over HTTP (issue 11): POST /api/v1/track
(the object of `waymark track --json`), one byte-identical 404 for an
unknown ENVID and a wrong secret, the failure counter shared with MTQP's
mtqp_auth_failures (both ways), the page and its form post without
JavaScript (a server-rendered timeline), the compiled-in assets (ETag,
304, Content-Security-Policy, size), `sendmail --track`'s link with
http_public_url, and the secret never in the daemon's log.

Messages stay queued: the smarthost is a closed port and the retry
interval an hour."""

import base64
import hashlib
import html.parser
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid

from conftest import (WAYMARK, WAYMARKD, free_port, make_message,
                      queued_qid, wait_for)
from mtqpclient import MTQPClient

NOINFO = b'{"error":"no tracking information","code":404}\n'


def new_secret():
    a = os.urandom(20)
    cert = base64.b64encode(hashlib.sha1(a).digest()).decode().rstrip("=")
    return a, cert


def xtext(s):
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else
                   "+%02X" % ord(c) for c in s)


def web_daemon(daemon_factory, extra=None):
    d = daemon_factory(start=False)
    d.http_port, d.mtqp_port = free_port(), free_port()
    d.config.update({"http": "127.0.0.1:%d" % d.http_port,
                     "mtqp": "127.0.0.1:%d" % d.mtqp_port,
                     "smarthost": "[127.0.0.1]:%d" % free_port(),
                     "retry_schedule": "1h"})
    d.config.update(extra or {})
    d.write_config()
    d.start()
    return d


def submit(d, envid, cert, rcpts=("bob@remote.test",)):
    with d.connect() as c:
        c.ehlo()
        r = c.mail_transaction("sender@example.com", list(rcpts),
                               make_message(to=rcpts[0]),
                               params="ENVID=%s MTRK=%s" % (xtext(envid),
                                                            cert))
    qid = queued_qid(r)
    # the first (refused) attempt is over: the answers stay the same
    wait_for(lambda: all(x["status"] == "deferred" for x in
                         d.show_json(qid)["recipients"]),
             timeout=30, interval=0.1, what="deferred")
    return qid


def request(d, path, data=None, headers=None, method=None, source=None):
    """(status, headers, body bytes)"""
    url = "http://127.0.0.1:%d%s" % (d.http_port, path)
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api_track(d, envid, secret):
    body = json.dumps({"envid": envid, "secret": secret}).encode()
    return request(d, "/api/v1/track", body,
                   {"Content-Type": "application/json"})


def form_track(d, envid, secret):
    body = urllib.parse.urlencode({"envid": envid,
                                   "secret": secret}).encode()
    return request(d, "/t", body,
                   {"Content-Type": "application/x-www-form-urlencoded"})


class Text(html.parser.HTMLParser):
    """The page's text, its <time datetime> values and its scripts."""

    def __init__(self):
        super().__init__()
        self.parts, self.times, self.scripts, self.styles = [], [], [], []
        self.inline = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "time":
            self.times.append(a.get("datetime"))
        if tag == "script":
            self.scripts.append(a.get("src"))
        if tag == "link":
            self.styles.append(a.get("href"))
        if "style" in a or any(k.startswith("on") for k in a):
            self.inline = True

    def handle_data(self, data):
        self.parts.append(data)

    def text(self):
        return re.sub(r"\s+", " ", "".join(self.parts))


def parse(body):
    p = Text()
    p.feed(body.decode())
    return p


def test_api_found_matches_track_json(daemon_factory):
    d = web_daemon(daemon_factory)
    envid = "web-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert, ("bob@remote.test", "carol@remote.test"))
    b64 = base64.b64encode(a).decode()
    st, h, body = api_track(d, envid, b64)
    assert st == 200, body
    assert h["Content-Type"].startswith("application/json")
    got = json.loads(body)
    cli = d.cli("track", envid, "--secret", b64, "--json", check=0)
    want = json.loads(cli.out)
    # the first hop is asked directly, not over MTQP
    for hop in (got["hops"][0], want["hops"][0]):
        del hop["server"], hop["tls"]
    assert got == want
    assert got["hops"][0]["result"] == "ok"
    assert sorted(r["original_recipient"] for r in
                  got["hops"][0]["recipients"]) == ["bob@remote.test",
                                                    "carol@remote.test"]
    # base64url without padding (the link's form) is the same secret
    url = base64.urlsafe_b64encode(a).decode().rstrip("=")
    st2, _, body2 = api_track(d, envid, url)
    assert st2 == 200 and json.loads(body2)["envid"] == envid
    log = d.log_text()
    assert "http track client=[127.0.0.1] envid=%s result=found" % envid \
        in log, log[-2000:]
    for s in (b64, b64.rstrip("="), url):
        assert s not in log


def test_noinfo_byte_identical(daemon_factory):
    d = web_daemon(daemon_factory)
    envid = "web-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert)
    wrong = base64.b64encode(os.urandom(20)).decode()
    answers = [api_track(d, envid, wrong),
               api_track(d, "nobody-%s" % uuid.uuid4().hex, wrong),
               api_track(d, "nobody-x", base64.b64encode(a).decode())]
    for st, h, body in answers:
        assert st == 404
        assert body == NOINFO
        assert h["Content-Type"] == "application/json; charset=utf-8"
    # the form's answer is the same for both too
    p1 = form_track(d, envid, wrong)
    p2 = form_track(d, envid, base64.b64encode(os.urandom(16)).decode())
    assert p1[0] == p2[0] == 404 and p1[2] == p2[2]
    assert "No tracking information" in parse(p1[2]).text()
    assert wrong not in d.log_text()


def test_failures_shared_with_mtqp(daemon_factory):
    d = web_daemon(daemon_factory, {"mtqp_auth_failures": "2 per 1h"})
    envid = "web-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert)
    right = base64.b64encode(a).decode()
    wrong = base64.b64encode(b"not the secret").decode()
    assert api_track(d, envid, right)[0] == 200
    # two misses over HTTP: MTQP then refuses even the right secret
    for _ in range(2):
        assert api_track(d, envid, wrong)[2] == NOINFO
    with MTQPClient(d.mtqp_port) as c:
        r = c.track(xtext(envid), right)
        assert r.line.startswith("-ERR/noinfo"), r
    st, _, body = api_track(d, envid, right)
    assert (st, body) == (404, NOINFO)
    assert "result=noinfo reason=mtqp_auth_failures" in d.log_text()


def test_mtqp_failures_count_over_http(daemon_factory):
    d = web_daemon(daemon_factory, {"mtqp_auth_failures": "2 per 1h"})
    envid = "web-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert)
    right = base64.b64encode(a).decode()
    wrong = base64.b64encode(b"not the secret").decode()
    with MTQPClient(d.mtqp_port) as c:
        for _ in range(2):
            assert c.track(xtext(envid), wrong).line.startswith("-ERR/noinfo")
    st, _, body = api_track(d, envid, right)
    assert (st, body) == (404, NOINFO)


def test_form_post_renders_the_timeline(daemon_factory):
    d = web_daemon(daemon_factory)
    envid = "web-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert, ("bob@remote.test", '"x<b>"@remote.test'))
    st, h, body = form_track(d, envid, base64.b64encode(a).decode())
    assert st == 200, body
    assert h["Content-Type"].startswith("text/html")
    assert h["Cache-Control"] == "no-store"
    p = parse(body)
    text = p.text()
    assert "Tracking %s" % envid in text
    assert "Hop 1: mx.test" in text, text
    assert "bob@remote.test" in text and '"x<b>"@remote.test' in text
    assert b"&quot;x&lt;b&gt;&quot;@remote.test" in body      # escaped
    assert "Outcome" in text and "queued at mx.test (hop 1)" in text, text
    assert "+0000" in text                         # times in UTC
    assert p.times and all(t.endswith("Z") for t in p.times)
    assert p.scripts == ["/assets/track.js"] and not p.inline
    assert len(body) < 50 * 1024


DATE = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} " \
    r"\d\d:\d\d:\d\d [+-]\d{4}"
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def test_every_time_is_a_time_element(daemon_factory):
    """Every time of the timeline (arrival, last attempt, retrying
    until) is a <time datetime="...Z"> element whose text is the same
    instant in UTC, so the script can show each in local time; the note
    says UTC (the script rewrites it)."""
    d = web_daemon(daemon_factory)
    envid = "tz-%s@client.test" % uuid.uuid4().hex[:10]
    a, cert = new_secret()
    submit(d, envid, cert)
    st, h, body = form_track(d, envid, base64.b64encode(a).decode())
    assert st == 200, body
    page = body.decode()
    section = page[page.index('<section id="result">'):]
    elems = re.findall(r'<time datetime="([^"]+)">([^<]*)</time>', section)
    # arrival, the last attempt and the retry limit at least
    assert len(elems) >= 3, section
    for iso, txt in elems:
        m = re.fullmatch(r"\w{3}, (\d{1,2}) (\w{3}) (\d{4}) "
                         r"(\d\d:\d\d:\d\d) \+0000", txt)
        assert m, txt
        assert iso == "%s-%02d-%02dT%sZ" % (
            m.group(3), MONTHS.index(m.group(2)) + 1, int(m.group(1)),
            m.group(4)), (iso, txt)
    # no time left outside a <time> element
    bare = re.sub(r"<time [^>]*>[^<]*</time>", "", section)
    assert not re.search(DATE, bare), bare
    assert re.search(r'<p class="note" id="tz-note">Times in UTC\.</p>',
                     section), section
    assert "unless your browser" not in page


def test_pages_and_assets(daemon_factory):
    d = web_daemon(daemon_factory)
    total = 0
    st, h, body = request(d, "/t/abc%40client.test")
    assert st == 200
    assert b'value="abc@client.test"' in body
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert h["ETag"] and h["Cache-Control"]
    total += len(body)
    p = parse(body)
    assert not p.inline and all(s.startswith("/assets/")
                                for s in p.scripts + p.styles)
    assert b"http://" not in body and b"https://" not in body
    st, h, _ = request(d, "/t/abc%40client.test",
                       headers={"If-None-Match": h["ETag"]})
    assert st == 304
    for name, ctype in (("style.css", "text/css"),
                        ("track.js", "text/javascript")):
        st, h, body = request(d, "/assets/" + name)
        assert st == 200 and h["Content-Type"].startswith(ctype)
        assert h["Content-Security-Policy"]
        total += len(body)
        st2, _, body2 = request(d, "/assets/" + name,
                                headers={"If-None-Match": h["ETag"]})
        assert st2 == 304 and body2 == b""
    assert total < 50 * 1024
    assert request(d, "/assets/page.html")[0] == 404
    assert request(d, "/assets/nope.js")[0] == 404
    st, _, body = request(d, "/")
    assert st == 200 and b'id="secret"' in body


def test_envid_with_a_slash_in_the_link(daemon_factory):
    # sendmail --track writes "/" as %2F; either form reaches the page
    d = web_daemon(daemon_factory)
    for path in ("/t/a%2Fb%2Fc%40client.test", "/t/a/b/c%40client.test"):
        st, h, body = request(d, path)
        assert st == 200, path
        assert b'value="a/b/c@client.test"' in body
    assert request(d, "/t/")[0] == 404


def test_sendmail_prints_the_link(daemon_factory, tmp_path):
    d = web_daemon(daemon_factory,
                   {"http_public_url": "https://track.example.org/"})
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.run([WAYMARK, "-f", d.conf, "sendmail", "--track",
                        "bob@remote.test"],
                       input=make_message(to="bob@remote.test"),
                       capture_output=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 2, lines
    envid = lines[0]
    m = re.fullmatch(r"https://track\.example\.org/t/([^#]+)#([A-Za-z0-9_-]+)",
                     lines[1])
    assert m, lines[1]
    assert urllib.parse.unquote(m.group(1)) == envid
    key = (tmp_path / ".waymark" / "keys").read_text().split()[1]
    frag = m.group(2)
    assert base64.urlsafe_b64decode(frag + "=" * (-len(frag) % 4)) == \
        base64.b64decode(key)
    # the page's form takes the fragment as it is
    st, _, body = form_track(d, envid, frag)
    assert st == 200 and "Hop 1: mx.test" in parse(body).text()
    assert frag not in d.log_text() and key not in d.log_text()


def test_http_public_url_is_checked(daemon_factory):
    d = daemon_factory(start=False)
    for bad in ("track.example.org", "ftp://x", "https://", "https://x/?a",
                "https://x/#f"):
        d.config["http_public_url"] = bad
        d.write_config()
        p = subprocess.run([WAYMARKD, "-n", "-f", d.conf],
                           capture_output=True, timeout=30)
        assert p.returncode == 1 and b"http_public_url" in p.stderr, bad


# ------------------------------------------------------------ multi-hop

from dnsfix import dns_factory  # noqa: E402,F401  (fixture)
from test_track_hops import (A_ADDR, check_flow, net,  # noqa: E402,F401
                             track_json)


def test_multi_hop_timeline(net):  # noqa: F811
    """A -> B -> C (as test_track_hops.py): the page served by A follows
    the transferred recipients to B and C by SRV, as `waymark track`."""
    n = net()
    envid, token = n.submit()
    check_flow(n, envid, token)
    want = track_json(n, envid)
    with open(os.path.join(n.home, ".waymark", "keys")) as f:
        secret = [l.split()[1] for l in f if l.startswith(envid + " ")][-1]
    n.a.stop()
    n.a.http_port = free_port()
    n.a.config["http"] = "%s:%d" % (A_ADDR, n.a.http_port)
    n.a.write_config()
    n.a.start()
    url = "http://%s:%d" % (A_ADDR, n.a.http_port)
    req = urllib.request.Request(
        url + "/api/v1/track", headers={"Content-Type": "application/json"},
        data=json.dumps({"envid": envid, "secret": secret}).encode())
    with urllib.request.urlopen(req, timeout=150) as r:
        got = json.loads(r.read())
    del got["hops"][0]["server"], got["hops"][0]["tls"]
    del want["hops"][0]["server"], want["hops"][0]["tls"]
    assert got == want
    assert [h["host"] for h in got["hops"]] == ["mx.a.test", "mx.b.test",
                                                "mx.c.test"], got
    req = urllib.request.Request(
        url + "/t", data=urllib.parse.urlencode(
            {"envid": envid, "secret": secret}).encode())
    with urllib.request.urlopen(req, timeout=150) as r:
        text = parse(r.read()).text()
    for s in ("Hop 1: mx.a.test", "Hop 2: mx.b.test", "Hop 3: mx.c.test",
              "bob@c.test delivered at mx.c.test (hop 3)",
              "carol@d.test relayed to mx.d.test: tracking ends there"):
        assert s in text, (s, text)


def test_head_on_pages(daemon_factory):
    d = web_daemon(daemon_factory)
    st, h, body = request(d, "/")
    assert st == 200
    st2, h2, body2 = request(d, "/", method="HEAD")
    assert st2 == 200 and body2 == b""
    assert h2["ETag"] and h2["ETag"] == h["ETag"]
    assert h2["Cache-Control"] == h["Cache-Control"]
    assert h2["Content-Security-Policy"]
    assert int(h2["Content-Length"]) == len(body)
    st3, _, _ = request(d, "/", method="HEAD",
                        headers={"If-None-Match": h["ETag"]})
    assert st3 == 304
    st4, h4, _ = request(d, "/assets/style.css", method="HEAD")
    assert st4 == 200 and h4["Content-Type"].startswith("text/css")
    # the JSON route stays POST only
    st5, h5, _ = request(d, "/api/v1/track", method="HEAD")
    assert st5 == 405 and h5["Allow"] == "POST"
