"""Configuration texts shared by several test modules."""

GOOD = """
applications:
  - name: shop
    router: {type: haproxy, socket: /tmp/haproxy.sock}
    services:
      - name: web
        policy: {major: careful, minor: canary, patch: canary}
        stable_version: 1.0.370
policies:
  - name: canary
    interval: 5s
    steps:
      - {weight: 10, duration: 30s}
      - {weight: 100}
    checks:
      - {name: fast, type: latency, under: 500ms, min: 0.9}
  - name: careful
    steps: [{weight: 5, duration: 2m}, {weight: 100, duration: 1m}]
"""
