"""CircleCI: outbound-webhook verification and parsing (events.py), the API v2 client (api.py),
and the orb source (orb/orb.yml)."""
