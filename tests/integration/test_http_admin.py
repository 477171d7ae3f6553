"""The operator's pages on http_admin (issue 11, operator view): basic
auth once, then a session cookie (HttpOnly, SameSite=Strict); the queue
list at /admin/ with the API's filters and paging; the message page
/admin/m/QID with everything HTML-escaped and a quarantined body shown as
text; hold / release / flush / delete / delete with bounce through the
page's forms (per-session CSRF token, Origin check), recorded with the
operator's name; the refusals (401 without a session, 403 bad or missing
token or a cross-site Origin, 404 unknown queue id, 409 as an error
page); logout.

Messages stay queued: the smarthost is a closed port and the retry
interval an hour.  A policy rule quarantines mail whose subject has
"quarantine-me"."""

import html.parser
import http.client
import os
import re
import urllib.parse

from test_http_api import (ADMIN, ADMIN_PW, OTHER, OTHER_PW, auth_header,
                           submit, wait_deferred, web_daemon)
from conftest import make_message, queued_qid, wait_for

POLICY = "quarantine/manual header=Subject:/quarantine-me/\n"


class Page(html.parser.HTMLParser):
    """The forms, the table rows by table id, the text by element id."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.forms, self.tables, self.byid = [], {}, {}
        self._form = self._table = self._row = self._cell = None
        self._ids = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action"),
                          "method": a.get("method"), "fields": {},
                          "button": None}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and "name" in a:
            self._form["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self._form is not None:
            self._form["button"] = a.get("id")
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row.append(self._cell)
        if "id" in a:
            self._ids.append((tag, a["id"], []))
            self.byid[a["id"]] = self._ids[-1][2]

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        if self._ids and self._ids[-1][0] == tag:
            self._ids.pop()

    def handle_data(self, data):
        if self._cell is not None and self._row is not None:
            self._cell.append(data)
        for _, _, buf in self._ids:
            buf.append(data)

    def text(self, id_):
        return "".join(self.byid.get(id_, []))

    def rows(self, id_):
        return [["".join(c) for c in r] for r in self.tables.get(id_, [])]

    def form(self, button):
        for f in self.forms:
            if f["button"] == button:
                return f
        raise AssertionError("no form with button %s" % button)


class Op:
    """One operator's browser: basic auth the first time, then the
    cookie."""

    def __init__(self, d, user=ADMIN, password=ADMIN_PW):
        self.d, self.cookie = d, None
        self.user, self.password = user, password

    def req(self, method, path, body=None, headers=None, auth=None,
            cookie=True):
        c = http.client.HTTPConnection("127.0.0.1", self.d.http_port,
                                       timeout=20)
        h = dict(headers or {})
        if auth or (auth is None and self.cookie is None):
            h["Authorization"] = auth_header(self.user, self.password)
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if body is not None:
            body = urllib.parse.urlencode(body)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read().decode()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        sc = hdrs.get("set-cookie")
        if sc and sc.startswith("wm_admin=") and "Max-Age=0" not in sc:
            self.cookie = sc.split(";")[0]
        return r.status, hdrs, data

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def submit(self, form, **kw):
        return self.req("POST", form["action"], body=form["fields"], **kw)


def admin_daemon(daemon_factory):
    d = web_daemon(daemon_factory, start=False)
    with open(os.path.join(d.dir, "policy.conf"), "w") as f:
        f.write(POLICY)
    d.config["policy"] = "policy.conf"
    d.write_config()
    d.start()
    return d


def send_raw(d, sender, rcpt, msg):
    with d.connect() as c:
        c.ehlo()
        return queued_qid(c.mail_transaction(sender, [rcpt], msg))


def listed(op, query=""):
    st, h, body = op.get("/admin/?" + query)
    assert st == 200, body
    p = Page(body)
    return [r[0] for r in p.rows("queue")[1:] if len(r) == 6], p


def test_login_cookie_logout(daemon_factory):
    d = admin_daemon(daemon_factory)
    op = Op(d)
    st, h, body = op.get("/admin/", auth=False)
    assert st == 401 and h["www-authenticate"] == 'Basic realm="waymark"'
    st, h, body = Op(d, OTHER, OTHER_PW).get("/admin/")
    assert st == 403
    st, h, body = Op(d, ADMIN, "wrong").get("/admin/")
    assert st == 401
    st, h, body = op.get("/admin/")
    assert st == 200, body
    sc = h["set-cookie"]
    assert re.match(r"wm_admin=[0-9a-f]{64}; ", sc), sc
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert attr in sc, sc
    assert "Secure" not in sc        # no TLS here (loopback)
    assert h["content-security-policy"].startswith("default-src 'self'")
    # not no-referrer: browsers would send "Origin: null" with the forms
    assert h["referrer-policy"] == "same-origin"
    assert "<script src=\"/assets/admin.js\"" in body
    assert "<script>" not in body
    # later requests: the cookie alone, no password, no new session
    st, h, body = op.get("/admin/", auth=False)
    assert st == 200 and "set-cookie" not in h
    assert d.log_text().count("session started user=%s" % ADMIN) == 1
    # a made-up cookie is no session
    st, h, body = op.get("/admin/", auth=False,
                         headers={"Cookie": "wm_admin=" + "ab" * 32},
                         cookie=False)
    assert st == 401
    # logout needs the token
    p = Page(op.get("/admin/", auth=False)[2])
    out = [f for f in p.forms if f["action"] == "/admin/logout"][0]
    st, h, body = op.req("POST", "/admin/logout", body={}, auth=False)
    assert st == 403
    st, h, body = op.submit(out, auth=False)
    assert st == 200 and "Max-Age=0" in h["set-cookie"]
    st, h, body = op.get("/admin/", auth=False)
    assert st == 401
    # the assets: the script, never the templates
    st, h, body = op.get("/assets/admin.js", auth=False)
    assert st == 200 and "javascript" in h["content-type"]
    st, h, body = op.get("/assets/admin.html", auth=False)
    assert st == 404


def test_list_filters_and_paging(daemon_factory):
    d = admin_daemon(daemon_factory)
    qids = [submit(d, "s%d@example.com" % i, "r%d@remote.test" % i,
                   subject="m%d" % i) for i in range(4)]
    wait_deferred(d, qids)
    qq = send_raw(d, "q@example.com", "rq@remote.test",
                  make_message(subject="quarantine-me", sender="q@example.com",
                               to="rq@remote.test"))
    wait_for(lambda: d.show_json(qq)["state"] == "quarantine", timeout=10,
             what="quarantined")
    everything = sorted(qids + [qq])
    op = Op(d)
    got, p = listed(op)
    assert got == everything
    assert "filters" in p.byid          # the filter form
    # a submitted empty filter form: empty fields are no filter
    got, p = listed(op, "state=&sender=&recipient=&queue_id=&message_id="
                    "&status=&min_age=&max_age=")
    assert got == everything
    assert listed(op, "state=quarantine")[0] == [qq]
    assert listed(op, "state=quarantine%2Fmanual")[0] == [qq]
    assert listed(op, "state=normal")[0] == sorted(qids)
    assert listed(op, "sender=S2%40example")[0] == [qids[2]]
    assert listed(op, "recipient=r1%40remote")[0] == [qids[1]]
    assert listed(op, "queue_id=" + qids[3])[0] == [qids[3]]
    mid = d.show_json(qids[0])["message_id"]
    assert listed(op, "message_id=" + urllib.parse.quote(mid))[0] == \
        [qids[0]]
    assert listed(op, "status=deferred")[0] == sorted(qids)
    assert listed(op, "status=delivered")[0] == []
    assert listed(op, "min_age=3600")[0] == []
    assert listed(op, "max_age=3600")[0] == everything
    # paging: limit 2, following the "Next page" link keeps the filters
    seen, path = [], "/admin/?status=deferred&limit=2"
    while True:
        st, h, body = op.get(path)
        assert st == 200
        p = Page(body)
        seen += [r[0] for r in p.rows("queue")[1:]]
        m = re.search(r'<a id="next" href="([^"]+)"', body)
        if not m:
            break
        path = m.group(1).replace("&amp;", "&")
        assert "status=deferred" in path
    assert seen == sorted(qids)
    # a bad filter: an error page
    st, h, body = op.get("/admin/?state=nosuch")
    assert st == 400 and "unknown state" in Page(body).text("error")


def test_detail_escaping_and_quarantined_body(daemon_factory):
    d = admin_daemon(daemon_factory)
    evil = "<script>alert(1)</script>"
    msg = make_message(subject="quarantine-me " + evil,
                       sender="x@example.com", to="a&b@remote.test",
                       body=b"<html><body><b>bold</b>" +
                       evil.encode() + b"</body></html>\r\n")
    q = send_raw(d, "x@example.com", "a&b@remote.test", msg)
    wait_for(lambda: d.show_json(q)["state"] == "quarantine", timeout=10,
             what="quarantined")
    op = Op(d)
    st, h, body = op.get("/admin/m/" + q)
    assert st == 200, body
    assert len(body.encode()) < 50 * 1024
    assert "<script>alert" not in body and "<b>bold" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "a&amp;b@remote.test" in body
    p = Page(body)
    assert p.text("state") == "quarantine/manual"
    rc = p.rows("recipients")[1]
    assert rc[0] == "a&b@remote.test" and rc[1] in ("queued", "deferred")
    assert "Subject: quarantine-me " + evil in p.text("header")
    assert "Received:" in p.text("header")        # the trace fields
    assert "<b>bold</b>" + evil in p.text("body")   # as text
    assert any("accepted" in r[1] or "received" in r[1]
               for r in p.rows("events")), p.rows("events")
    assert h["content-security-policy"].startswith("default-src 'self'")
    # the list escapes as well
    st, h, body = op.get("/admin/")
    assert "a&amp;b@remote.test" in body and "<script>alert" not in body
    # unknown queue id: 404 page
    st, h, body = op.get("/admin/m/AAAAAAAAAAAA")
    assert st == 404 and "no such message" in Page(body).text("error")


def test_actions_via_forms(daemon_factory):
    d = admin_daemon(daemon_factory)
    q1 = submit(d, "a@example.com", "x@remote.test")
    q2 = submit(d, "b@example.com", "y@remote.test")
    wait_deferred(d, [q1, q2])
    op = Op(d)

    def page(q):
        st, h, body = op.get("/admin/m/" + q)
        assert st == 200, body
        return Page(body)

    def do(q, button, expect=303, **kw):
        f = page(q).form(button)
        assert f["method"] == "post" and re.fullmatch(
            "[0-9a-f]{64}", f["fields"]["csrf"])
        st, h, body = op.submit(f, **kw)
        assert st == expect, (button, st, body)
        if st == 303:
            assert h["location"] == "/admin/m/" + q
        return st, h, body

    f_hold = page(q1).form("do-hold")
    do(q1, "do-hold")
    p = page(q1)
    assert p.text("state") == "other/hold"
    assert p.text("flash").startswith("hold: ")
    assert "flash" not in page(q1).byid          # shown once
    ev = [e for e in d.show_json(q1)["events"] if e["kind"] == "state"]
    assert 'actor="operator alice via http"' in ev[-1]["detail"], ev
    # hold again (the page has no Hold button now): 409 as an error page
    assert "hold (already held)" in p.text("actions-note")
    st, h, body = op.submit(f_hold)
    assert st == 409, body
    assert h["content-type"].startswith("text/html")
    assert Page(body).text("error")
    f_release = page(q1).form("do-release")
    do(q1, "do-release")
    assert page(q1).text("state") != "other/hold"
    do(q2, "do-flush")
    assert page(q2).text("flash").startswith("flush: ")

    # refusals: missing / wrong token, cross-site Origin
    f = page(q2).form("do-hold")
    st, h, body = op.req("POST", f["action"], body={}, auth=False)
    assert st == 403 and "token" in Page(body).text("error")
    st, h, body = op.req("POST", f["action"], body={"csrf": "0" * 64},
                         auth=False)
    assert st == 403
    st, h, body = op.submit(f, headers={"Origin": "http://evil.example"})
    assert st == 403
    # basic auth without a session has no token either
    st, h, body = Op(d).submit(f)
    assert st == 403
    assert d.show_json(q2)["state"] == "normal"
    # same-origin Origin passes
    st, h, body = op.submit(f, headers={
        "Origin": "http://127.0.0.1:%d" % d.http_port})
    assert st == 303
    assert d.show_json(q2)["state"] == "other"
    # unknown queue id with a good token: 404 page
    st, h, body = op.req("POST", "/admin/m/AAAAAAAAAAAA/hold",
                         body=f["fields"])
    assert st == 404 and "text/html" in h["content-type"]

    do(q2, "do-delete-bounce")
    m = d.show_json(q2)
    assert m["recipients"][0]["status"] == "failed", m
    do(q1, "do-delete")
    m = d.show_json(q1)
    assert m["recipients"][0]["status"] == "failed", m
    ev = [e for e in m["events"] if "operator alice via http" in
          e["detail"]]
    assert len(ev) >= 3, m["events"]
    # a finished message: its page stays, without buttons; actions 409
    p = page(q1)
    assert not [f for f in p.forms if (f["button"] or "").startswith("do-")]
    assert p.text("actions-note").startswith("Finished")
    st, h, body = op.submit(f_release)
    assert st == 409, body
    assert "finished" in Page(body).text("error")
    left = listed(op)[0]          # the bounce's DSN may be queued
    assert q1 not in left and q2 not in left


def buttons(p):
    return sorted(f["button"] for f in p.forms
                  if (f["button"] or "").startswith("do-"))


def test_buttons_by_state_and_dsns_sent(daemon_factory):
    """The message page offers only what queue_action allows in the
    message's state, and lists the DSNs sent (its "dsn" events)."""
    d = admin_daemon(daemon_factory)
    q = submit(d, "a@example.com", "x@remote.test")
    wait_deferred(d, [q])
    qq = send_raw(d, "q@example.com", "rq@remote.test",
                  make_message(subject="quarantine-me", sender="q@example.com",
                               to="rq@remote.test"))
    wait_for(lambda: d.show_json(qq)["state"] == "quarantine", timeout=10,
             what="quarantined")
    op = Op(d)

    def page(qid):
        st, h, body = op.get("/admin/m/" + qid)
        assert st == 200, body
        return Page(body)

    # deferred, not held: no release
    p = page(q)
    assert buttons(p) == ["do-delete", "do-delete-bounce", "do-flush",
                          "do-hold"], buttons(p)
    assert "release (not held)" in p.text("actions-note")
    assert p.text("dsns").strip() == "None."
    # quarantined (queued, never tried): release and delete only
    p = page(qq)
    assert buttons(p) == ["do-delete", "do-delete-bounce", "do-release"], \
        buttons(p)
    note = p.text("actions-note")
    assert "hold (already held)" in note and "flush" in note, note
    # delete with bounce: a failed DSN to the sender, listed; no buttons
    st, h, body = op.submit(p.form("do-delete-bounce"))
    assert st == 303, body
    ev = wait_for(lambda: [e for e in d.show_json(qq)["events"]
                           if e["kind"] == "dsn"], timeout=10,
                  what="the dsn event")
    dsn_qid = re.search(r"qid=(\S+)", ev[0]["detail"]).group(1)
    p = page(qq)
    assert buttons(p) == []
    assert p.text("actions-note").startswith("Finished")
    rows = p.rows("dsns")
    assert rows[0] == ["Time", "Kind", "DSN queue id", "To", "About"], rows
    assert len(rows) == 2, rows
    assert rows[1][1:] == ["failed", dsn_qid, "the sender",
                           "<rq@remote.test>"], rows
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows[1][0]), rows
    assert ('<a href="/admin/m/%s">' % dsn_qid) in op.get("/admin/m/" + qq)[2]
