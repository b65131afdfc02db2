"""The mail path: SMTP/LMTP listener, relay to the upstream, mailbox readers."""
