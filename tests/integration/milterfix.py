#!/usr/bin/python3
"""A scripted python3-milter filter for test_milter.py.

    /usr/bin/python3 milterfix.py SOCKET LOG [MODE]

SOCKET is libmilter's spec (inet:PORT@127.0.0.1 or unix:/PATH).  Every
callback appends one JSON line to LOG (its arguments and the macros it
saw), so the test can check what the MTA sent.  What it answers:
  MODE connect-reject / connect-tempfail / helo-reject: at that stage;
  MODE slow-eom: sleeps 5 s before answering the end of message;
  MAIL FROM <rejectmail@...> / <tempmail@...>: reject / tempfail;
  RCPT local part rejectme / tempme / replyme (550 5.7.9 via
  setreply) / discardme: that answer;
  each X-Action header field of the message, at the end of message, in
  order: add-header, chg-header, del-header, ins-header, chg-from,
  add-rcpt, del-rcpt, repl-body, quarantine (modifications), then the
  first of reject, tempfail, discard, accept decides (else continue).
The header callback is NOREPLY (SMFIP_NR_HDR); unknown commands are not
implemented (SMFIP_NOUNKNOWN).
"""

import json
import sys
import time

import Milter

SOCK, LOG = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else ""


def record(**kw):
    with open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\n")


class TestMilter(Milter.Base):
    def __init__(self):
        self.actions = []
        self.body_len = 0
        self.bodytext = b""

    def connect(self, hostname, family, hostaddr):
        record(ev="connect", hostname=hostname,
               addr=hostaddr[0] if hostaddr else None,
               j=self.getsymval("j"),
               client_addr=self.getsymval("{client_addr}"),
               daemon_name=self.getsymval("{daemon_name}"))
        if MODE == "connect-reject":
            return Milter.REJECT
        if MODE == "connect-tempfail":
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def hello(self, name):
        record(ev="helo", name=name)
        if MODE == "helo-reject":
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        self.actions = []
        self.body_len = 0
        self.bodytext = b""
        record(ev="mail", sender=mailfrom, params=list(params),
               mail_addr=self.getsymval("{mail_addr}"))
        if mailfrom.startswith("<rejectmail@"):
            return Milter.REJECT
        if mailfrom.startswith("<tempmail@"):
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        local = to.strip("<>").split("@")[0]
        record(ev="rcpt", rcpt=to, rcpt_addr=self.getsymval("{rcpt_addr}"))
        if local == "rejectme":
            return Milter.REJECT
        if local == "tempme":
            return Milter.TEMPFAIL
        if local == "replyme":
            self.setreply("550", "5.7.9", "No thanks from the filter")
            return Milter.REJECT
        if local == "discardme":
            return Milter.DISCARD
        return Milter.CONTINUE

    def data(self):
        record(ev="data")
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name, value):
        if name.lower() == "x-action":
            self.actions.append(value.strip())
        record(ev="header", name=name, value=value)
        return Milter.CONTINUE

    def eoh(self):
        record(ev="eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_len += len(chunk)
        self.bodytext += chunk
        return Milter.CONTINUE

    def eom(self):
        record(ev="eom", i=self.getsymval("i"), body_len=self.body_len,
               body=self.bodytext.decode("latin-1"), actions=self.actions)
        if MODE == "slow-eom":
            time.sleep(5)
        decision = Milter.CONTINUE
        for a in self.actions:
            if a == "add-header":
                self.addheader("X-Milter", "added")
            elif a == "chg-header":
                self.chgheader("Subject", 1, "changed by the milter")
            elif a == "del-header":
                self.chgheader("X-Remove", 1, "")
            elif a == "ins-header":
                self.addheader("X-Inserted", "first", 0)
            elif a == "chg-from":
                self.chgfrom("<newfrom@example.com>")
            elif a == "add-rcpt":
                self.addrcpt("<added@example.org>")
            elif a == "del-rcpt":
                self.delrcpt("<deleted@example.org>")
            elif a == "repl-body":
                self.replacebody(b"The milter replaced this body.\r\n")
            elif a == "quarantine":
                self.quarantine("suspicious content")
            elif a in ("reject", "tempfail", "discard", "accept") and \
                    decision == Milter.CONTINUE:
                decision = {"reject": Milter.REJECT,
                            "tempfail": Milter.TEMPFAIL,
                            "discard": Milter.DISCARD,
                            "accept": Milter.ACCEPT}[a]
        return decision

    def abort(self):
        record(ev="abort")
        return Milter.CONTINUE

    def close(self):
        record(ev="close")
        return Milter.CONTINUE


def main():
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY |
                     Milter.ADDRCPT | Milter.ADDRCPT_PAR | Milter.DELRCPT |
                     Milter.QUARANTINE | Milter.CHGFROM)
    record(ev="start")
    Milter.runmilter("waymark-test", SOCK, 240)


if __name__ == "__main__":
    main()
