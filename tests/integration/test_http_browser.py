"""Both web views in a real browser (issue 11): headless Chromium driven
by selenium.  A -> B -> C (three waymarkd on 127.0.0.2-4, set up by
test_track_hops.py's `net` fixture): B quarantines the tracked message,
the operator page at B filters to it and releases it by a click, C
delivers it, and the sender page at A shows the three hops and the
delivered outcome.  One waymarkd: the sender page opened by its link
/t/ENVID#SECRET (the script takes the secret from the fragment and posts
the form) shows the timeline; the operator page, filtered to the
quarantined message, releases it by a click, and the message is
delivered.  Screenshots are saved in the daemon's temp dir and named in
the log.  Skipped when chromium, chromedriver or python3-selenium is
missing (scripts/deps.sh installs them)."""

import base64
import datetime
import os
import shutil
import time
import uuid

import pytest

from conftest import free_port, make_message, queued_qid, wait_for
from test_http_api import ADMIN, ADMIN_PW, auth_header, write_users
from test_http_track import new_secret, xtext
from dnsfix import dns_factory  # noqa: F401  (fixture)
from test_track_hops import (A_ADDR, B_ADDR, BOB, net,  # noqa: F401
                             queued_by_envid, rcpt_of, wait_final)

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import WebDriverException
except ImportError:         # pragma: no cover
    webdriver = None

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def browser():
    if webdriver is None:
        pytest.skip("python3-selenium is not installed (scripts/deps.sh)")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium or chromedriver is not installed "
                    "(Debian chromium, chromium-driver: scripts/deps.sh)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1200,1600"):
        opts.add_argument(a)
    try:
        from selenium.webdriver.chrome.service import Service
        return webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # noqa: BLE001
        pytest.skip("chromium does not start here: %s" % e)


def shot(drv, d, name):
    path = os.path.join(d.dir, name)
    drv.save_screenshot(path)
    print("screenshot: %s" % path)


def wait_text(drv, what, timeout=20):
    end = time.monotonic() + timeout
    body = ""
    while time.monotonic() < end:
        try:
            body = drv.find_element(By.TAG_NAME, "body").text
        except WebDriverException:      # a page is loading: no body yet
            body = ""
        if what in body:
            return body
        time.sleep(0.2)
    raise AssertionError("%r not on the page: %s" % (what, body))


def check_local_times(drv, zone, hours):
    """Every <time> shows its datetime in zone (UTC+hours, no DST), the
    UTC text in its title; the note names the zone."""
    elems = drv.find_elements(By.CSS_SELECTOR, "#result time[datetime]")
    assert len(elems) >= 2, drv.page_source
    for t in elems:
        utc = datetime.datetime.strptime(t.get_attribute("datetime"),
                                         "%Y-%m-%dT%H:%M:%SZ")
        want = (utc + datetime.timedelta(hours=hours)).strftime(
            "%Y-%m-%d %H:%M:%S")
        assert t.text == want, (t.text, want)
        assert t.get_attribute("title").endswith("+0000"), \
            t.get_attribute("title")
    note = drv.find_element(By.ID, "tz-note").text
    assert "Times in your time zone (%s)" % zone in note, note
    assert "UTC." not in note


def test_browser_sender_and_operator(daemon_factory):
    d = daemon_factory(start=False)
    d.http_port, admin_port = free_port(), free_port()
    d.config.update({"http": "127.0.0.1:%d" % d.http_port,
                     "http_admin": "127.0.0.1:%d" % admin_port,
                     "mtqp": "127.0.0.1:%d" % free_port(),
                     "admin_users": ADMIN,
                     "smarthost": "[127.0.0.1]:%d" % free_port(),
                     "retry_schedule": "1h",
                     "policy": "policy.conf"})
    with open(os.path.join(d.dir, "policy.conf"), "w") as f:
        f.write("quarantine/manual header=Subject:/quarantine-me/\n")
    d.config["auth_users"] = write_users(d)
    d.write_config()
    d.start()

    # a tracked message (remote: stays deferred)
    envid = "br-%s@client.test" % uuid.uuid4().hex[:8]
    a, cert = new_secret()
    with d.connect() as c:
        c.ehlo()
        qid = queued_qid(c.mail_transaction(
            "sender@example.com", ["bob@remote.test"],
            make_message(to="bob@remote.test"),
            params="ENVID=%s MTRK=%s" % (xtext(envid), cert)))
    wait_for(lambda: d.show_json(qid)["recipients"][0]["status"] ==
             "deferred", timeout=30, interval=0.1, what="deferred")
    # a quarantined one to a local recipient
    with d.connect() as c:
        c.ehlo()
        qq = queued_qid(c.mail_transaction(
            "q@example.com", ["user@example.org"],
            make_message(subject="quarantine-me", sender="q@example.com")))
    wait_for(lambda: d.show_json(qq)["state"] == "quarantine", timeout=10,
             what="quarantined")

    drv = browser()
    try:
        # the sender view: the link, as `waymark sendmail --track` prints
        secret = base64.urlsafe_b64encode(a).decode().rstrip("=")
        drv.get("http://127.0.0.1:%d/t/%s#%s" % (d.http_port, envid,
                                                  secret))
        text = wait_text(drv, "Tracking %s" % envid)
        shot(drv, d, "sender.png")
        assert "bob@remote.test" in text, text
        assert "Outcome" in text, text
        assert secret not in drv.current_url   # the script removed it

        # the operator view: basic auth by a header, then the cookie
        drv.execute_cdp_cmd("Network.enable", {})
        drv.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
            "Authorization": auth_header(ADMIN, ADMIN_PW)}})
        drv.get("http://127.0.0.1:%d/admin/" % admin_port)
        wait_text(drv, "Queue")
        field = drv.find_element(By.ID, "f-state")
        field.send_keys("quarantine")
        drv.find_element(By.CSS_SELECTOR, "#filters button").click()
        wait_text(drv, "1 message on this page")
        shot(drv, d, "operator-list.png")
        drv.find_element(By.LINK_TEXT, qq).click()
        wait_text(drv, "Message %s" % qq)
        assert drv.find_element(By.ID, "state").text == "quarantine/manual"
        drv.find_element(By.ID, "do-release").click()
        wait_text(drv, "release:")
        d.wait_mails("user@example.org", 1)
        drv.refresh()
        text = wait_text(drv, "delivered")
        shot(drv, d, "operator-released.png")
        assert "user@example.org" in text
    finally:
        drv.quit()
    ev = [e for e in d.show_json(qq)["events"]
          if "operator alice via http" in e["detail"]]
    assert ev, d.show_json(qq)["events"]


def with_web(d, **cfg):
    """Restart d with the web keys cfg (and alice in auth_users)."""
    d.stop()
    d.config.update(cfg)
    if "http_admin" in cfg:
        d.config["admin_users"] = ADMIN
        d.config["auth_users"] = write_users(d)
    d.write_config()
    d.start()


def test_browser_a_b_c(net):  # noqa: F811
    """The issue's browser test on three daemons: the operator releases
    the message quarantined at B by clicking; the sender page at A shows
    hops A, B, C and bob's delivery at C."""
    n = net(quarantine=True)
    a_port, b_port = free_port(), free_port()
    with_web(n.a, http="%s:%d" % (A_ADDR, a_port))
    with_web(n.b, http_admin="%s:%d" % (B_ADDR, b_port))
    envid, token = n.submit(rcpts=(BOB,), subject="please quarantine me")
    wait_final(n.a, n.qid(n.a, token), BOB)
    held = wait_for(lambda: queued_by_envid(n.b, envid), timeout=30,
                    what="the message queued at B")
    assert held["state"] == "quarantine", held
    qb = held["queue_id"]
    with open(os.path.join(n.home, ".waymark", "keys")) as f:
        secret = [l.split()[1] for l in f if l.startswith(envid + " ")][-1]
    # the link's fragment: base64url of the secret (as sendmail prints)
    frag = base64.urlsafe_b64encode(base64.b64decode(secret)).decode() \
        .rstrip("=")

    drv = browser()
    try:
        # the operator at B: filter, open, release by a click
        drv.execute_cdp_cmd("Network.enable", {})
        drv.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
            "Authorization": auth_header(ADMIN, ADMIN_PW)}})
        drv.get("http://%s:%d/admin/" % (B_ADDR, b_port))
        wait_text(drv, "Queue")
        drv.find_element(By.ID, "f-state").send_keys("quarantine")
        drv.find_element(By.CSS_SELECTOR, "#filters button").click()
        wait_text(drv, "1 message on this page")
        shot(drv, n.b, "abc-operator-list.png")
        drv.find_element(By.LINK_TEXT, qb).click()
        wait_text(drv, "Message %s" % qb)
        assert drv.find_element(By.ID, "state").text == "quarantine/hops"
        drv.find_element(By.ID, "do-release").click()
        wait_text(drv, "release:")
        n.c.wait_mails(BOB, 1)
        mb = wait_final(n.b, qb, BOB)
        assert rcpt_of(mb, BOB)["status"] in ("relayed", "transferred"), mb
        drv.refresh()
        text = wait_text(drv, rcpt_of(mb, BOB)["status"])
        shot(drv, n.b, "abc-operator-released.png")
        assert BOB in text
        ev = [e for e in mb["events"]
              if "operator alice via http" in e["detail"]]
        assert ev, mb["events"]
        drv.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})

        # the sender at A: the link; the walk follows B and C by SRV;
        # times in the browser's zone
        drv.execute_cdp_cmd("Emulation.setTimezoneOverride",
                            {"timezoneId": "Asia/Tokyo"})
        drv.get("http://%s:%d/t/%s#%s" % (A_ADDR, a_port, envid, frag))
        text = wait_text(drv, "Tracking %s" % envid, timeout=60)
        shot(drv, n.a, "abc-sender.png")
        for s in ("Hop 1: mx.a.test", "Hop 2: mx.b.test", "Hop 3: mx.c.test",
                  "%s delivered at mx.c.test (hop 3)" % BOB):
            assert s in text, (s, text)
        assert frag not in drv.current_url
        check_local_times(drv, "Asia/Tokyo", 9)
    finally:
        drv.quit()
