"""A real Postfix on loopback ports, with its own configuration, queue, data and log folders.

The master.cf lines that put Sluice in the mail path (the `DOC_*` constants) are the lines
docs/postfix.md shows, with that document's ports; test_postfix.py checks that the document
still contains them, so the documented setup is the tested one. Everything else here
(main.cf, the internal services) only makes a private, fast, loopback-only instance.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.servers import free_port, require_binary, wait_for_port

#: The ports docs/postfix.md uses: Sluice's default listen port and the re-injection port.
DOC_SLUICE_PORT = 10025
DOC_REINJECT_PORT = 10026

# docs/postfix.md "SMTP variant": under the smtpd that receives mail, and the filter transport.
DOC_SMTP_FILTER_OPTION = "  -o content_filter=sluice:[127.0.0.1]:{sluice_port}\n"
DOC_SMTP_TRANSPORT = """\
sluice    unix  -       -       n       -       20      smtp
  -o syslog_name=postfix/$service_name
  -o smtp_data_done_timeout=1200
  -o smtp_connect_timeout=10
  -o disable_mime_output_conversion=yes
  -o smtp_generic_maps=
"""

# docs/postfix.md "LMTP variant (preferred)".
DOC_LMTP_FILTER_OPTION = "  -o content_filter=sluice-lmtp:[127.0.0.1]:{sluice_port}\n"
DOC_LMTP_TRANSPORT = """\
sluice-lmtp unix -      -       n       -       20      lmtp
  -o syslog_name=postfix/$service_name
  -o lmtp_data_done_timeout=1200
  -o lmtp_connect_timeout=10
  -o disable_mime_output_conversion=yes
  -o lmtp_generic_maps=
"""

# docs/postfix.md "The re-injection port", shared by both variants.
DOC_REINJECTION_SERVICE = """\
127.0.0.1:{reinject_port} inet n  -       n       -       -       smtpd
  -o syslog_name=postfix/reinject
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_helo_restrictions=
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=
  -o smtpd_end_of_data_restrictions=
  -o mynetworks=127.0.0.0/8
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o smtpd_client_connection_count_limit=0
  -o smtpd_client_connection_rate_limit=0
  -o local_header_rewrite_clients=
  -o smtpd_milters=
"""

#: Test only, appended after the documented options (the last -o wins): the re-injection
#: port refuses the addresses in the main.cf parameter below, as a real upstream policy would.
TEST_REINJECTION_REJECTS = "  -o smtpd_recipient_restrictions=$sluice_test_rcpt_restrictions\n"

#: Postfix's own services, as in Debian's master.cf but without chroot (nothing to set up).
INTERNAL_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

PUBLIC_SMTPD = "127.0.0.1:{port} inet n       -       n       -       -       smtpd\n"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-sluice-test
maillog_file = {root}/log/maillog
maillog_file_prefixes = {root}/log
myhostname = postfix.test
mydomain = test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relayhost = {relayhost}
smtputf8_enable = yes
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_peername_lookup = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
# Final delivery for the SMTPUTF8 case: every address at this domain lands in one maildir.
virtual_mailbox_domains = {virtual_domain}
virtual_mailbox_base = {root}/vmail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
sluice_test_rcpt_restrictions = check_recipient_access inline:{{ {rejects} }},
    permit_mynetworks, reject
"""

#: Postfix itself delivers mail for this domain into a maildir (it speaks SMTPUTF8; smtp-sink
#: does not).
VIRTUAL_DOMAIN = "utf8.test"
#: The address the tests' re-injection port refuses (554 5.7.1).
REJECTED_ON_REINJECTION = "bad@example.com"


class PostfixMissing(RuntimeError):
    pass


def render_filter_config(*, sluice_port: int, reinject_port: int,
                         lmtp: bool) -> tuple[str, str, str]:
    """The master.cf blocks of one docs/postfix.md variant, with the given ports: the
    content_filter option, the filter transport, the re-injection service."""
    option = DOC_LMTP_FILTER_OPTION if lmtp else DOC_SMTP_FILTER_OPTION
    transport = DOC_LMTP_TRANSPORT if lmtp else DOC_SMTP_TRANSPORT
    return (option.format(sluice_port=sluice_port), transport,
            DOC_REINJECTION_SERVICE.format(reinject_port=reinject_port))


class PostfixInstance:
    """Postfix master with its own config_directory, queue_directory and data_directory.

    Two public smtpd ports hand mail to Sluice (one through the SMTP transport, one through
    LMTP), a re-injection port takes it back, and the relayhost (an smtp-sink) or, for
    `VIRTUAL_DOMAIN`, Postfix's virtual delivery agent receives it in the end.
    """

    def __init__(self, relayhost: str, *, reject_on_reinjection: Sequence[str] = ()) -> None:
        try:
            self.postfix = require_binary("postfix")
            self.postsuper = require_binary("postsuper")
        except RuntimeError as exc:
            raise PostfixMissing(str(exc)) from exc
        if os.geteuid() != 0:
            raise PostfixMissing("starting a Postfix master needs root")
        try:
            owner = pwd.getpwnam("postfix")
            nobody = pwd.getpwnam("nobody")
        except KeyError as exc:
            raise PostfixMissing("the postfix user is missing: install Debian's postfix") from exc
        self.relayhost = relayhost
        self.rejects = tuple(reject_on_reinjection)
        self.public_smtp_port = free_port()
        self.public_lmtp_port = free_port()
        self.reinject_port = free_port()
        self.sluice_smtp_port = free_port()
        self.sluice_lmtp_port = free_port()
        # Not under pytest's 0700 tmp dir: Postfix's daemons run as postfix and nobody.
        self.root = Path(tempfile.mkdtemp(prefix="sluice-postfix-"))
        self.root.chmod(0o755)
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "queue"
        self.maillog = self.root / "log" / "maillog"
        self.vmail = self.root / "vmail"
        for folder in (self.config_dir, self.queue_dir, self.root / "data", self.root / "log",
                       self.vmail):
            folder.mkdir(mode=0o755)
        os.chown(self.root / "data", owner.pw_uid, owner.pw_gid)
        os.chown(self.vmail, nobody.pw_uid, nobody.pw_gid)
        self._write_config(nobody.pw_uid, nobody.pw_gid)
        self._log_mark = 0
        self.running = False

    @property
    def reinjection(self) -> str:
        """Sluice's --upstream."""
        return f"127.0.0.1:{self.reinject_port}"

    def _write_config(self, uid: int, gid: int) -> None:
        rejects = " ".join(f"{address}=REJECT" for address in self.rejects) or "x@invalid=DUNNO"
        host, _, port = self.relayhost.rpartition(":")
        (self.config_dir / "main.cf").write_text(MAIN_CF.format(
            root=self.root, relayhost=f"[{host}]:{port}", virtual_domain=VIRTUAL_DOMAIN,
            uid=uid, gid=gid, rejects=rejects))
        reinjection = DOC_REINJECTION_SERVICE.format(reinject_port=self.reinject_port)
        if self.rejects:
            reinjection += TEST_REINJECTION_REJECTS
        (self.config_dir / "master.cf").write_text(
            PUBLIC_SMTPD.format(port=self.public_smtp_port)
            + DOC_SMTP_FILTER_OPTION.format(sluice_port=self.sluice_smtp_port)
            + PUBLIC_SMTPD.format(port=self.public_lmtp_port)
            + DOC_LMTP_FILTER_OPTION.format(sluice_port=self.sluice_lmtp_port)
            + DOC_SMTP_TRANSPORT + DOC_LMTP_TRANSPORT + reinjection + INTERNAL_SERVICES)
        # Debian's postfix looks up dynamically loaded map types here.
        for name in ("dynamicmaps.cf", "dynamicmaps.cf.d"):
            source = Path("/etc/postfix") / name
            if source.is_dir():
                shutil.copytree(source, self.config_dir / name)
            elif source.exists():
                shutil.copy(source, self.config_dir / name)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60,
                                check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}\n{self.log_tail()}")
        return result

    def start(self) -> None:
        self._run(self.postfix, "-c", str(self.config_dir), "start")
        self.running = True
        for port in (self.public_smtp_port, self.public_lmtp_port, self.reinject_port):
            wait_for_port(port)

    def master_pid(self) -> int | None:
        """This instance's running master, from its pid file (checked: pids get reused)."""
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
            if Path(f"/proc/{pid}/comm").read_text().strip() != "master":
                return None
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def stop(self) -> None:
        """Stop the master (TERM, then KILL if it hangs), then remove the folder."""
        pid = self.master_pid()  # also after a failed start, which may leave a master
        if pid is not None:
            # What `postfix stop` does, without its one-second polling.
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_gone(pid, wait):
                    break
        elif self.running:  # no pid file: let postfix-script find the master
            self._run(self.postfix, "-c", str(self.config_dir), "stop", check=False)
        self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    # -- state between tests ------------------------------------------------------------

    def reset(self) -> None:
        """Forget queued mail, delivered mail and old log lines."""
        self._run(self.postsuper, "-c", str(self.config_dir), "-d", "ALL", check=False)
        for path in self.vmail.rglob("*"):
            if path.is_file():
                path.unlink()
        self._log_mark = self.maillog.stat().st_size if self.maillog.exists() else 0

    def log(self) -> str:
        """Log lines since the last reset."""
        if not self.maillog.exists():
            return ""
        with self.maillog.open("rb") as fh:
            fh.seek(self._log_mark)
            return fh.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        return "maillog:\n" + "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matches {pattern!r}\n{self.log_tail()}")
            time.sleep(0.05)

    def queued(self) -> list[Path]:
        """Queue files not yet delivered (or bounced) for good."""
        return [p for name in ("maildrop", "incoming", "active", "deferred", "hold")
                for p in (self.queue_dir / name).rglob("*") if p.is_file()]

    def wait_until_idle(self, timeout: float = 20.0) -> None:
        """Wait until the queue is empty: after that nothing more can be delivered."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix queue not empty: {self.queued()}\n"
                                     f"{self.log_tail()}")
            time.sleep(0.05)

    def virtual_mailbox(self) -> list[bytes]:
        """Messages Postfix's virtual agent delivered for `VIRTUAL_DOMAIN`, oldest first."""
        new = self.vmail / "inbox" / "new"
        if not new.exists():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
