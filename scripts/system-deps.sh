#!/usr/bin/env bash
# Debian packages the tests need: real servers on loopback (Postfix, smtp-sink/smtp-source;
# Dovecot IMAP; PostgreSQL), headless Chromium for the end-to-end page tests, openssl for test
# certificates. Installs only what is missing; needs root or sudo.
set -euo pipefail
packages=(postfix openssl sqlite3 dovecot-imapd postgresql chromium)
missing=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Preseed Postfix so the package installs without questions; its own daemon is not used.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
if [ -z "${SLUICE_APT_UPDATED:-}" ]; then $SUDO apt-get update; fi
$SUDO apt-get install -y --no-install-recommends "${packages[@]}"
# The packaged daemons are not used: the tests start their own instances on loopback.
for service in dovecot postgresql; do
  $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || \
    $SUDO service "$service" stop >/dev/null 2>&1 || true
done
