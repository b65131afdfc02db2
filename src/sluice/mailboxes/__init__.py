"""Where mail is read from: maildirs, mbox files, message files and IMAP mailboxes.

Used by `sluice analyze` and `sluice watch`. Imports only `core` (and the standard library
and imapclient): readers hand bytes on and never classify or decide.
"""
