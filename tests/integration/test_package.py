"""
The Debian package (issue 12): a copy of the source tree (git ls-files, or
the tree without build products) is built with `dpkg-buildpackage -us -uc
-b` (no tests during the build), then the .deb is checked: `dpkg-deb -c`
lists the daemon, the command, the systemd unit and tmpfiles.d snippet,
/usr/sbin/sendmail and /usr/bin/mailq, the man pages and the copyright
file; `dpkg-deb -f` shows Provides/Conflicts/Replaces mail-transport-agent
(Debian policy 11.6); the unit is Type=notify and sandboxed, with the
installed paths; the configuration the package writes at installation
(/usr/lib/waymark/mkconf, run here into a temp dir) listens on port 25 for
this machine's name and passes the packaged `waymarkd -n`; lintian, when
installed, reports no error (E:) tag; its warnings are reported.
Nothing is installed on this machine.  Skipped without dpkg-buildpackage
or with unmet build dependencies (the reason says which).
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import warnings

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_TIMEOUT = 1200
SKIP_DIRS = re.compile(r"^(build[^/]*|_inst[^/]*|autom4te\.cache|\.git|debian/waymark"
                       r"|debian/\.debhelper|debian/tmp)(/|$)")


def source_files():
    """The tree's files: git's list (tracked and new, not ignored), else a walk
    that leaves out build directories and installs."""
    try:
        out = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=60).stdout
        files = [f for f in out.decode().split("\0") if f]
        if files:
            return [f for f in files if os.path.lexists(os.path.join(REPO, f))]
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for root, dirs, names in os.walk(REPO):
        rel = os.path.relpath(root, REPO)
        rel = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if not SKIP_DIRS.match(rel + d)]
        files += [rel + n for n in names]
    return files


@pytest.fixture(scope="module")
def deb():
    """(path of waymark_*.deb, extracted tree, build dir); built once."""
    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage not installed (Debian package dpkg-dev; "
                    "scripts/deps.sh installs it)")
    if not os.path.isfile(os.path.join(REPO, "debian", "control")):
        pytest.skip("no debian/ directory in %s" % REPO)
    p = subprocess.run(["dpkg-checkbuilddeps"], cwd=REPO, capture_output=True, timeout=120)
    if p.returncode != 0:
        pytest.skip("build dependencies missing: %s"
                    % p.stderr.decode("utf-8", "replace").strip())
    top = tempfile.mkdtemp(prefix="wm-deb-", dir="/tmp")
    src = os.path.join(top, "waymark")
    try:
        for f in source_files():
            dst = os.path.join(src, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(REPO, f), dst, follow_symlinks=False)
        env = dict(os.environ)
        env["DEB_BUILD_OPTIONS"] = "nocheck parallel=%d" % min(os.cpu_count() or 1, 2)
        for k in ("WAYMARK_PREFIX", "ASAN_OPTIONS", "UBSAN_OPTIONS", "CFLAGS", "LDFLAGS"):
            env.pop(k, None)
        log = os.path.join(top, "build.log")
        with open(log, "wb") as lf:
            p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                               stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                               env=env, timeout=BUILD_TIMEOUT)
        if p.returncode != 0:
            with open(log, "rb") as lf:
                tail = lf.read()[-6000:].decode("utf-8", "replace")
            pytest.fail("dpkg-buildpackage exited %d:\n%s" % (p.returncode, tail))
        debs = [f for f in os.listdir(top) if re.match(r"^waymark_[^_]+_[^_]+\.deb$", f)]
        assert len(debs) == 1, "want one waymark_*.deb in %s, got %r" % (top, os.listdir(top))
        path = os.path.join(top, debs[0])
        tree = os.path.join(top, "root")
        subprocess.run(["dpkg-deb", "-x", path, tree], check=True, timeout=120)
        yield path, tree, top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def deb_paths(path):
    """{path: (mode string, link target or None)} from `dpkg-deb -c`."""
    out = subprocess.run(["dpkg-deb", "-c", path], capture_output=True, check=True,
                         timeout=60).stdout.decode()
    paths = {}
    for line in out.splitlines():
        f = line.split(None, 5)
        name = f[5]
        target = None
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        paths[name.lstrip(".").rstrip("/") or "/"] = (f[0], target)
    return paths


def unit_path(paths):
    for d in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        if d + "/waymarkd.service" in paths:
            return d + "/waymarkd.service"
    return None


def test_contents(deb):
    """Programs, unit, sendmail/mailq, man pages, copyright."""
    path, _, _ = deb
    paths = deb_paths(path)
    for want in ("/usr/sbin/waymarkd", "/usr/bin/waymark"):
        assert want in paths and paths[want][0].startswith("-rwx"), (want, sorted(paths))
    assert unit_path(paths), "no waymarkd.service: %r" % sorted(paths)
    assert "/usr/lib/tmpfiles.d/waymark.conf" in paths, sorted(paths)
    # Debian MTAs ship these paths themselves (policy 11.6)
    for want in ("/usr/sbin/sendmail", "/usr/bin/mailq"):
        assert want in paths, "%s missing: %r" % (want, sorted(paths))
        assert paths[want][1] is not None and paths[want][1].endswith("waymark"), \
            "%s must lead to waymark: %r" % (want, paths[want])
    for man in ("man8/waymarkd.8.gz", "man1/waymark.1.gz", "man5/waymark.conf.5.gz",
                "man7/waymark-http.7.gz"):
        assert "/usr/share/man/" + man in paths, man
    assert "/usr/share/doc/waymark/copyright" in paths
    # the configuration is generated at installation, never a conffile
    assert not any(p.startswith("/etc/") for p in paths), \
        "files in /etc: %r" % [p for p in paths if p.startswith("/etc/")]
    assert "/usr/lib/waymark/mkconf" in paths


def test_control_fields(deb):
    """Provides, Conflicts and Replaces mail-transport-agent; adduser."""
    path, _, _ = deb
    out = subprocess.run(["dpkg-deb", "-f", path, "Package", "Version", "Provides",
                          "Conflicts", "Replaces", "Depends"],
                         capture_output=True, check=True, timeout=60).stdout.decode()
    f = dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)
    assert f["Package"] == "waymark"
    for k in ("Provides", "Conflicts", "Replaces"):
        assert "mail-transport-agent" in [x.strip() for x in f.get(k, "").split(",")], (k, f)
    assert re.search(r"(^|, )adduser\b", f["Depends"]), f["Depends"]
    scripts = subprocess.run(["dpkg-deb", "-I", path, "postinst"], capture_output=True,
                             check=True, timeout=60).stdout.decode()
    assert "adduser --system" in scripts and "waymark" in scripts
    assert "/usr/lib/waymark/mkconf" in scripts
    assert "deb-systemd-helper enable 'waymarkd.service'" in scripts, \
        "the unit is enabled at installation (dh_installsystemd)"


def test_unit(deb):
    """Type=notify, the installed paths, SIGHUP reload, the sandbox."""
    path, tree, _ = deb
    unit = open(tree + unit_path(deb_paths(path))).read()
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    assert keys["Type"] == ["notify"]
    assert keys["ExecStart"] == ["/usr/sbin/waymarkd -f /etc/waymark/waymark.conf"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert keys["ProtectSystem"] == ["strict"]
    assert set(" ".join(keys["ReadWritePaths"]).split()) == {"/var/spool/waymark",
                                                             "/var/mail/waymark"}
    assert keys["NoNewPrivileges"] == ["yes"] and keys["PrivateTmp"] == ["yes"]
    assert "User" not in keys, "waymarkd drops to `user` itself"
    assert keys["WantedBy"] == ["multi-user.target"]


def test_generated_config(deb, tmp_path):
    """mkconf (postinst) writes port 25 and this machine's name, the
    packaged daemon accepts it, and an existing file is never replaced."""
    _, tree, _ = deb
    mkconf = tree + "/usr/lib/waymark/mkconf"
    template = tree + "/usr/share/waymark/waymark.conf"
    mailname = tmp_path / "mailname"
    mailname.write_text("mx.example.net\n")
    out = tmp_path / "etc" / "waymark.conf"
    env = dict(os.environ, WAYMARK_MAILNAME_FILE=str(mailname))
    subprocess.run([mkconf, template, str(out)], env=env, check=True, timeout=60)
    p = subprocess.run([tree + "/usr/sbin/waymarkd", "-n", "-f", str(out)],
                       capture_output=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr.decode()
    eff = dict(l.split(" = ", 1) for l in p.stdout.decode().splitlines() if " = " in l)
    assert eff["hostname"] == "mx.example.net"
    assert eff["listen"].split(", ")[0] == "0.0.0.0:25", eff["listen"]
    assert "mx.example.net" in eff["local_domains"], eff["local_domains"]
    assert eff["spool"] == "/var/spool/waymark"
    assert eff["mailbox_root"] == "/var/mail/waymark"
    assert eff["user"] == "waymark"

    # without /etc/mailname: the host's own name
    out2 = tmp_path / "etc2" / "waymark.conf"
    env2 = dict(os.environ, WAYMARK_MAILNAME_FILE=str(tmp_path / "none"))
    subprocess.run([mkconf, template, str(out2)], env=env2, check=True, timeout=60)
    names = {socket.getfqdn(), socket.gethostname()}
    got = re.search(r"^hostname = (.*)$", out2.read_text(), re.M).group(1)
    assert got in names, (got, names)

    # the administrator's file stays as it is
    out.write_text("# mine\n")
    subprocess.run([mkconf, template, str(out)], env=env, check=True, timeout=60)
    assert out.read_text() == "# mine\n"


def test_lintian(deb):
    """No lintian error tags; warnings are reported, not failed."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed")
    path, _, _ = deb
    p = subprocess.run(["lintian", "--no-tag-display-limit", path], capture_output=True,
                       timeout=600)
    out = p.stdout.decode("utf-8", "replace")
    errors = [l for l in out.splitlines() if l.startswith("E:")]
    for l in out.splitlines():
        if l.startswith(("W:", "I:")):
            warnings.warn("lintian: " + l)
    assert not errors, "lintian errors:\n" + "\n".join(errors)


def test_sendmail_reads_system_config(deb):
    """The packaged sendmail/mailq read /etc/waymark/waymark.conf without
    -C or $WAYMARK_CONF (configure --with-sendmail-config), not the
    embedded default that listens on 127.0.0.1:2525."""
    _, tree, _ = deb
    if os.path.exists("/etc/waymark/waymark.conf"):
        pytest.skip("/etc/waymark/waymark.conf exists here: cannot tell it was read")
    env = dict(os.environ)
    env.pop("WAYMARK_CONF", None)
    for prog, args in (("/usr/bin/mailq", []), ("/usr/sbin/sendmail", ["root"])):
        p = subprocess.run([tree + prog] + args, input=b"Subject: t\n\nx\n",
                           capture_output=True, timeout=60, env=env)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode != 0 and "/etc/waymark/waymark.conf" in err, (prog, p.returncode, err)
