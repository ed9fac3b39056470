"""The `sluice` command line: its commands, the client for Sluice's own API, terminal reports, the demo."""
