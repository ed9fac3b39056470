"""The web tests' API token."""

TOKEN = "web-tests-token-8c1f2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
