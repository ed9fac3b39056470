"""The registries: `type` -> (configuration model, implementation) for each extension point.

routers.py (router kinds), hooks.py (hook kinds), metrics.py (metric providers). They sit above
the implementations, which depend only on their interface modules (integrations/routers/interface.py,
integrations/notify/interface.py, integrations/metrics/interface.py), so no import cycle returns.
"""
