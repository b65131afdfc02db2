"""Sluice: an email-diversion gateway and mailbox analyzer."""

__version__ = "0.1.0"
