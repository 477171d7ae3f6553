"""The operator's HTTP JSON API (issue 11, first part): http_admin with
basic auth against auth_users restricted to admin_users, GET
/api/v1/queue (filters, paging), GET /api/v1/messages/QID, POST
/api/v1/messages/QID/{hold,release,delete,flush}, the refusals (401,
403, 404, 405, 409, CSRF), the bounds (431, 413, a slow client timed
out, http_max_connections), the auth_failures limit, the request log
line, http_tls, and `waymarkd -n` errors.

Messages stay queued: the smarthost is a closed port and the retry
interval an hour, so every recipient is deferred after its first try."""

import base64
import ctypes
import http.client
import json
import os
import pathlib
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (free_port, make_message, queued_qid, run_waymarkd,
                      wait_for)

ADMIN, ADMIN_PW = "alice", "op secret"
OTHER, OTHER_PW = "bob", "bob secret"

_libcrypt = ctypes.CDLL("libcrypt.so.1")
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
_libcrypt.crypt_gensalt.restype = ctypes.c_char_p
_libcrypt.crypt_gensalt.argtypes = (ctypes.c_char_p, ctypes.c_ulong,
                                    ctypes.c_char_p, ctypes.c_int)


def crypt_hash(password):
    setting = _libcrypt.crypt_gensalt(b"$6$", 0, None, 0)
    return _libcrypt.crypt(password.encode(), setting).decode()


def write_users(d):
    path = os.path.join(d.dir, "users")
    with open(path, "w") as f:
        f.write("%s:%s\n%s:%s\n" % (ADMIN, crypt_hash(ADMIN_PW), OTHER,
                                    crypt_hash(OTHER_PW)))
    return path


def web_daemon(daemon_factory, extra=None, start=True):
    port = free_port()
    cfg = {"http_admin": "127.0.0.1:%d" % port,
           "admin_users": ADMIN,
           "smarthost": "[127.0.0.1]:%d" % free_port(),
           "retry_schedule": "1h"}
    cfg.update(extra or {})
    d = daemon_factory(cfg, start=False)
    d.config["auth_users"] = write_users(d)
    d.write_config()
    d.http_port = port
    if start:
        d.start()
    return d


def auth_header(user, password):
    return "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()


def api(d, method, path, user=ADMIN, password=ADMIN_PW, headers=None,
        body=None, source="127.0.0.1", tls=False, timeout=20):
    """(status, headers, parsed JSON body) of one request."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", d.http_port,
                                        timeout=timeout, context=ctx,
                                        source_address=(source, 0))
    else:
        c = http.client.HTTPConnection("127.0.0.1", d.http_port,
                                       timeout=timeout,
                                       source_address=(source, 0))
    h = dict(headers or {})
    if user is not None:
        h["Authorization"] = auth_header(user, password)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()
    js = None
    if hdrs.get("content-type", "").startswith("application/json") and \
            method != "HEAD":
        js = json.loads(data)
        if r.status >= 400:
            assert js["code"] == r.status and js["error"], js
    return r.status, hdrs, js


def submit(d, sender, rcpt, subject="test"):
    msg = make_message(subject=subject, sender=sender, to=rcpt)
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(sender, [rcpt], msg))


def wait_deferred(d, qids):
    def done():
        st = {m["queue_id"]: m for m in d.queue_json()}
        return all(q in st and st[q]["recipients"][0]["status"] ==
                   "deferred" for q in qids)
    wait_for(done, timeout=60, interval=0.2, what="all deferred")


def test_refusals(daemon_factory):
    d = web_daemon(daemon_factory)
    st, h, js = api(d, "GET", "/api/v1/queue", user=None)
    assert st == 401 and h["www-authenticate"] == 'Basic realm="waymark"'
    st, h, js = api(d, "GET", "/api/v1/queue", password="wrong")
    assert st == 401 and h["www-authenticate"] == 'Basic realm="waymark"'
    st, h, js = api(d, "GET", "/api/v1/queue", user="nobody-here")
    assert st == 401
    st, h, js = api(d, "GET", "/api/v1/queue", user=OTHER,
                    password=OTHER_PW)
    assert st == 403 and "not an operator" in js["error"]
    st, h, js = api(d, "GET", "/api/v1/queue",
                    headers={"Authorization": "Basic !!!"}, user=None)
    assert st == 401
    st, h, js = api(d, "GET", "/nothing/here")
    assert st == 404
    st, h, js = api(d, "DELETE", "/api/v1/queue")
    assert st == 405 and "GET" in h["allow"]
    st, h, js = api(d, "GET", "/api/v1/messages/AAAAAAAAAAAA")
    assert st == 404
    st, h, js = api(d, "GET", "/api/v1/messages/not-a-qid")
    assert st == 404
    st, h, js = api(d, "POST", "/api/v1/messages/AAAAAAAAAAAA/hold")
    assert st == 404
    st, h, js = api(d, "GET", "/api/v1/queue?limit=0")
    assert st == 400
    st, h, js = api(d, "GET", "/api/v1/queue?limit=501")
    assert st == 400
    st, h, js = api(d, "GET", "/api/v1/queue?colour=red")
    assert st == 400 and "colour" in js["error"]
    st, h, js = api(d, "GET", "/api/v1/queue?state=bogus")
    assert st == 400
    st, h, js = api(d, "GET", "/api/v1/queue?status=lost")
    assert st == 400
    st, h, js = api(d, "GET", "/api/v1/queue?min_age=-1")
    assert st == 400
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 200 and js == {"messages": [], "next": None}
    assert h["content-type"].startswith("application/json")


def test_queue_filters_and_paging(daemon_factory):
    d = web_daemon(daemon_factory)
    qids = [submit(d, "s%d@example.com" % i, "r%d@remote.test" % i,
                   subject="m%d" % i) for i in range(5)]
    wait_deferred(d, qids)
    cli = {m["queue_id"]: m for m in d.queue_json()}

    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 200 and js["next"] is None
    got = js["messages"]
    assert [m["queue_id"] for m in got] == sorted(qids)
    for m in got:   # the objects of `waymark queue --json`
        c = cli[m["queue_id"]]
        assert set(m) == set(c), (set(m) ^ set(c))
        for k in ("sender", "envid", "state", "state_value", "size",
                  "arrival_time", "message_id"):
            assert m[k] == c[k], k
        assert ([r["address"] for r in m["recipients"]] ==
                [r["address"] for r in c["recipients"]])

    # paging
    seen, after, pages = [], None, 0
    while True:
        q = "/api/v1/queue?limit=2" + ("&after=" + after if after else "")
        st, h, js = api(d, "GET", q)
        assert st == 200 and len(js["messages"]) <= 2
        seen += [m["queue_id"] for m in js["messages"]]
        pages += 1
        if js["next"] is None:
            break
        assert js["next"] == js["messages"][-1]["queue_id"]
        after = js["next"]
    assert seen == sorted(qids) and pages == 3

    def ids(query):
        st, h, js = api(d, "GET", "/api/v1/queue?" + query)
        assert st == 200, js
        return [m["queue_id"] for m in js["messages"]]

    assert ids("sender=S3%40EXAMPLE") == [qids[3]]
    assert ids("recipient=r1@remote") == [qids[1]]
    assert ids("queue_id=" + qids[4]) == [qids[4]]
    assert ids("message_id=" + cli[qids[2]]["message_id"].replace(
        "<", "%3C").replace(">", "%3E").replace("@", "%40")) == [qids[2]]
    assert ids("status=deferred") == sorted(qids)
    assert ids("status=delivered") == []
    assert ids("state=normal") == sorted(qids)
    assert ids("state=other/hold") == []
    assert ids("min_age=3600") == []
    assert ids("max_age=3600") == sorted(qids)
    assert ids("sender=s2&recipient=r2") == [qids[2]]
    assert ids("sender=s2&recipient=r3") == []


def test_show_and_actions(daemon_factory):
    d = web_daemon(daemon_factory)
    q1 = submit(d, "a@example.com", "x@remote.test")
    q2 = submit(d, "b@example.com", "y@remote.test")
    wait_deferred(d, [q1, q2])

    st, h, js = api(d, "GET", "/api/v1/messages/" + q1)
    assert st == 200 and js["queue_id"] == q1 and js["events"]
    shown = d.show_json(q1)
    assert set(js) == set(shown)
    assert js["events"][0] == shown["events"][0]

    # release of a message that is not held: 409 with the queue's reason
    st, h, js = api(d, "POST", "/api/v1/messages/%s/release" % q1)
    assert st == 409, js
    st, h, js = api(d, "POST", "/api/v1/messages/%s/hold" % q1)
    assert st == 200 and js["action"] == "hold", js
    m = d.show_json(q1)
    assert (m["state"], m["state_value"]) == ("other", "hold")
    ev = [e for e in m["events"] if e["kind"] == "state"]
    assert ev and 'actor="operator alice via http"' in ev[-1]["detail"], ev
    st, h, js = api(d, "POST", "/api/v1/messages/%s/hold" % q1)
    assert st == 409
    st, h, js = api(d, "GET", "/api/v1/queue?state=other/hold")
    assert [m["queue_id"] for m in js["messages"]] == [q1]
    st, h, js = api(d, "POST", "/api/v1/messages/%s/release" % q1)
    assert st == 200, js
    assert d.show_json(q1)["state"] != "other"

    st, h, js = api(d, "POST", "/api/v1/messages/%s/flush" % q2)
    assert st == 200 and js["count"] >= 0, js
    st, h, js = api(d, "POST", "/api/v1/messages/%s/delete?bounce=2" % q2)
    assert st == 400
    st, h, js = api(d, "POST", "/api/v1/messages/%s/delete?bounce=1" % q2)
    assert st == 200, js
    st, h, js = api(d, "POST", "/api/v1/messages/%s/delete" % q1)
    assert st == 200, js
    st, h, js = api(d, "POST", "/api/v1/messages/%s/delete" % q1)
    assert st == 409, js
    m = d.show_json(q2)
    assert m["recipients"][0]["status"] == "failed", m
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert js["messages"] == [] or all(
        m["queue_id"] not in (q1, q2) for m in js["messages"])
    st, h, js = api(d, "GET", "/api/v1/messages/AAAAAAAAAAAA")
    assert st == 404
    # GET on an action is not allowed
    st, h, js = api(d, "GET", "/api/v1/messages/%s/hold" % q1)
    assert st == 405


def test_csrf_origin(daemon_factory):
    d = web_daemon(daemon_factory)
    q = submit(d, "a@example.com", "x@remote.test")
    wait_deferred(d, [q])
    st, h, js = api(d, "POST", "/api/v1/messages/%s/hold" % q,
                    headers={"Origin": "http://evil.example"})
    assert st == 403 and "Origin" in js["error"]
    assert d.show_json(q)["state"] == "normal"
    st, h, js = api(d, "POST", "/api/v1/messages/%s/hold" % q,
                    headers={"Origin": "null"})
    assert st == 403
    st, h, js = api(d, "POST", "/api/v1/messages/%s/hold" % q,
                    headers={"Origin": "http://127.0.0.1:%d" % d.http_port})
    assert st == 200, js
    # a read is not state-changing: Origin is not checked
    st, h, js = api(d, "GET", "/api/v1/queue",
                    headers={"Origin": "http://evil.example"})
    assert st == 200


def test_bounds(daemon_factory):
    d = web_daemon(daemon_factory, {"http_timeout": "2s",
                                    "http_max_header_size": "2k",
                                    "http_max_body_size": "1k"})
    st, h, js = api(d, "GET", "/api/v1/queue",
                    headers={"X-Filler": "a" * 3000})
    assert st == 431, (st, js)
    st, h, js = api(d, "POST", "/api/v1/messages/AAAAAAAAAAAA/hold",
                    body=b"x" * 5000)
    assert st == 413, st
    # a slow client: half a request line, then nothing
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=15)
    s.sendall(b"GET /api/v1/qu")
    t0 = time.monotonic()
    assert s.recv(4096) == b""
    assert time.monotonic() - t0 < 14
    s.close()
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 200


def test_max_connections(daemon_factory):
    d = web_daemon(daemon_factory, {"http_max_connections": "2"})
    conns = []
    for i in range(2):
        c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=20)
        c.request("GET", "/api/v1/queue",
                  headers={"Authorization": auth_header(ADMIN, ADMIN_PW)})
        r = c.getresponse()
        r.read()
        assert r.status == 200
        conns.append(c)             # kept alive
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 503 and "connections" in js["error"]
    conns.pop().close()
    wait_for(lambda: api(d, "GET", "/api/v1/queue")[0] == 200, timeout=10,
             what="a connection slot again")
    for c in conns:
        c.close()


def daemon_fds(d):
    return len(os.listdir("/proc/%d/fd" % d.pid))


def test_idle_connections_count(daemon_factory):
    """Connections that never send a request count from their accept:
    with both slots held by idle sockets a request gets 503; an idle
    connection over the limit is closed long before http_timeout; past
    twice the limit a new one is closed at once; no descriptor stays."""
    d = web_daemon(daemon_factory, {"http_max_connections": "2",
                                    "http_timeout": "60s"})
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 200
    base = daemon_fds(d)

    def idle():
        s = socket.create_connection(("127.0.0.1", d.http_port), timeout=20)
        s.settimeout(20)
        return s

    held = [idle(), idle()]
    # the accepts are counted in the loop's next turn: a request tells
    wait_for(lambda: api(d, "GET", "/api/v1/queue")[0] == 503,
             timeout=10, what="503 with two idle connections")
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 503 and "connections" in js["error"]
    # over the limit, two more may wait briefly; the fifth is closed now
    over = [idle(), idle()]
    time.sleep(0.5)
    extra = idle()
    assert extra.recv(100) == b""
    extra.close()
    assert "closing a new one at once" in d.log_text()
    # the two over the limit are closed well before http_timeout (60s)
    t0 = time.monotonic()
    for s in over:
        assert s.recv(100) == b""
        s.close()
    assert time.monotonic() - t0 < 40
    held.pop().close()
    wait_for(lambda: api(d, "GET", "/api/v1/queue")[0] == 200, timeout=10,
             what="a connection slot again")
    held.pop().close()
    wait_for(lambda: daemon_fds(d) <= base, timeout=10,
             what="descriptors back to %d" % base)


def test_auth_failure_limit(daemon_factory):
    d = web_daemon(daemon_factory, {"client_limit_exceptions": "",
                                    "auth_failures": "3 per 10m"})
    for i in range(3):
        st, h, js = api(d, "GET", "/api/v1/queue", password="bad%d" % i,
                        source="127.0.0.2")
        assert st == 401
    # the right password no longer helps from that address
    st, h, js = api(d, "GET", "/api/v1/queue", source="127.0.0.2")
    assert st == 429 and "retry-after" in h
    # another address is not affected
    st, h, js = api(d, "GET", "/api/v1/queue", source="127.0.0.3")
    assert st == 200
    assert "reason=auth_failures" in d.log_text()


def test_auth_failures_shared_with_smtp_auth(daemon_factory):
    """One auth_failures count per address for SMTP AUTH and the
    operator view's logins (DESIGN.md "Password checks"), both ways."""
    sub = free_port()
    d = web_daemon(daemon_factory, {"client_limit_exceptions": "",
                                    "auth_failures": "3 per 10m",
                                    "submission": "127.0.0.1:%d" % sub,
                                    "submission_plaintext_auth": "yes"})
    wrong = base64.b64encode(b"\0%s\0wrong" % ADMIN.encode()).decode()
    right = base64.b64encode(("\0%s\0%s" % (ADMIN, ADMIN_PW)).encode()
                             ).decode()

    def smtp_auth(source, cred):
        with smtplib.SMTP("127.0.0.1", sub, timeout=30,
                          source_address=(source, 0)) as c:
            c.ehlo()
            return c.docmd("AUTH", "PLAIN " + cred)[0]

    # SMTP first: two SMTP failures and one HTTP failure reach 3
    for i in range(2):
        assert smtp_auth("127.0.0.2", wrong) == 535
    assert api(d, "GET", "/api/v1/queue", password="bad",
               source="127.0.0.2")[0] == 401
    assert api(d, "GET", "/api/v1/queue", source="127.0.0.2")[0] == 429
    assert smtp_auth("127.0.0.2", right) == 454
    # HTTP first: two HTTP failures and one SMTP failure reach 3
    for i in range(2):
        assert api(d, "GET", "/api/v1/queue", password="bad",
                   source="127.0.0.3")[0] == 401
    assert smtp_auth("127.0.0.3", wrong) == 535
    assert smtp_auth("127.0.0.3", right) == 454
    assert api(d, "GET", "/api/v1/queue", source="127.0.0.3")[0] == 429
    # another address is not affected
    assert smtp_auth("127.0.0.4", right) == 235


def test_exempt_clients_not_limited(daemon_factory):
    d = web_daemon(daemon_factory, {"auth_failures": "2 per 10m"})
    for i in range(3):   # 127.0.0.0/8 is in relay_from: exempt
        assert api(d, "GET", "/api/v1/queue", password="bad")[0] == 401
    assert api(d, "GET", "/api/v1/queue")[0] == 200


def test_request_log_line(daemon_factory):
    d = web_daemon(daemon_factory)
    st, h, js = api(d, "GET", "/api/v1/queue?sender=topsecret42&limit=3")
    assert st == 200
    text = d.log_text()
    lines = [l for l in text.splitlines() if "method=GET" in l and
             "path=/api/v1/queue " in l and "status=200" in l]
    assert lines, text[-3000:]
    assert "topsecret42" not in text
    assert "user=alice" in lines[-1] and "bytes=" in lines[-1]
    assert "time=" in lines[-1] and "client=[127.0.0.1]" in lines[-1]
    assert ADMIN_PW not in text
    api(d, "GET", "/api/v1/queue", user=None)
    assert any("status=401" in l for l in d.log_text().splitlines())


def test_https(daemon_factory):
    d = web_daemon(daemon_factory, start=False)
    tmp_path = pathlib.Path(d.dir)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout",
                    str(tmp_path / "key.pem"), "-out",
                    str(tmp_path / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    for f in ("key.pem", "cert.pem"):
        os.chmod(tmp_path / f, 0o644)
    d.config.update({"http_tls": "yes", "tls_cert": str(tmp_path / "cert.pem"),
                     "tls_key": str(tmp_path / "key.pem")})
    d.write_config()
    d.start()
    st, h, js = api(d, "GET", "/api/v1/queue", tls=True)
    assert st == 200 and js == {"messages": [], "next": None}
    st, h, js = api(d, "GET", "/api/v1/queue", tls=True, user=None)
    assert st == 401
    st, h, js = api(d, "POST", "/api/v1/messages/AAAAAAAAAAAA/hold",
                    tls=True, headers={"Origin": "http://127.0.0.1:%d" %
                                       d.http_port})
    assert st == 403    # the origin is https://..., not http://
    # plain HTTP on the TLS port gets no HTTP answer
    with pytest.raises((http.client.HTTPException, OSError)):
        api(d, "GET", "/api/v1/queue", timeout=5)


def test_config_check(tmp_path):
    def check(text):
        p = tmp_path / "w.conf"
        p.write_text("spool = %s\ncontrol = %s\n" % (tmp_path / "s",
                                                    tmp_path / "c.sock") +
                     text)
        return run_waymarkd("-n", "-f", str(p))

    p = check("")
    assert p.returncode == 0, p.err
    for line in ("http = \n", "http_admin = \n", "http_tls = no\n",
                 "admin_users = \n", "http_max_header_size = 8k\n",
                 "http_max_body_size = 64k\n",
                 "http_max_connections = 64\n", "http_timeout = 30s\n"):
        assert line in p.out, line
    p = check("http_admin = 127.0.0.1:8080, [::1]:8080\n"
              "admin_users = alice, bob\n")
    assert p.returncode == 0, p.err
    assert "http_admin = 127.0.0.1:8080, [::1]:8080\n" in p.out
    assert "admin_users = alice, bob\n" in p.out
    for text, want in (
            ("http_tls = yes\n", "http_tls: needs tls_cert"),
            ("http_admin = localhost\n", "http_admin"),
            ("http = 127.0.0.1\n", "http"),
            ("admin_users = a:b\n", "admin_users: invalid user name"),
            ("http_max_header_size = 10\n", "http_max_header_size"),
            ("http_max_connections = 0\n", "http_max_connections"),
            ("http_timeout = 0\n", "http_timeout"),
            ("http_tls = maybe\n", "http_tls")):
        p = check(text)
        assert p.returncode == 1, (text, p.out)
        assert want in p.err, (text, p.err)


def test_reload_applies_users(daemon_factory):
    import signal
    d = web_daemon(daemon_factory)
    assert api(d, "GET", "/api/v1/queue", user=OTHER,
               password=OTHER_PW)[0] == 403
    d.config["admin_users"] = "%s, %s" % (ADMIN, OTHER)
    d.write_config()
    d.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.log_text(), timeout=10,
             what="the reload")
    assert api(d, "GET", "/api/v1/queue", user=OTHER,
               password=OTHER_PW)[0] == 200


def read_header(s, buf):
    """(header bytes, what followed) of the next answer on s."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i].decode("latin-1"), buf[i:]


def test_head_on_get_routes(daemon_factory):
    d = web_daemon(daemon_factory)
    st, h, js = api(d, "GET", "/api/v1/queue")
    assert st == 200
    get_len = int(h["content-length"])
    auth = "Authorization: %s\r\n" % auth_header(ADMIN, ADMIN_PW)
    with socket.create_connection(("127.0.0.1", d.http_port),
                                  timeout=10) as s:
        s.sendall(("HEAD /api/v1/queue HTTP/1.1\r\nHost: x\r\n%s\r\n"
                   % auth).encode())
        hdr, rest = read_header(s, b"")
        assert hdr.startswith("HTTP/1.1 200 "), hdr
        fields = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip()
                  for ln in hdr.split("\r\n")[1:] if ":" in ln}
        assert int(fields["content-length"]) == get_len
        assert fields["content-type"].startswith("application/json")
        # no body: the next answer on the connection follows at once
        s.sendall(("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n%s\r\n"
                   % auth).encode())
        hdr2, _ = read_header(s, rest)
        assert hdr2.startswith("HTTP/1.1 200 "), (rest, hdr2)
    # the checks before the handler are the GET's
    st, h, _ = api(d, "HEAD", "/api/v1/queue", user=None)
    assert st == 401 and h["www-authenticate"] == 'Basic realm="waymark"'
    st, h, _ = api(d, "HEAD", "/api/v1/messages/AAAAAAAAAAAA")
    assert st == 404
    # not on POST routes; Allow names HEAD with GET
    st, h, _ = api(d, "HEAD", "/api/v1/messages/AAAAAAAAAAAA/hold")
    assert st == 405 and h["allow"] == "POST"
    st, h, _ = api(d, "DELETE", "/api/v1/queue")
    assert st == 405 and h["allow"] == "GET, HEAD"
    assert "method=HEAD path=/api/v1/queue status=200 bytes=0" in \
        d.log_text()
