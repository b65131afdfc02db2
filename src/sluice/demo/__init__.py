"""The demo: a generated sales and offering team's mail, fed through a running Sluice."""
