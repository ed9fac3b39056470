"""Argo CD / Argo Rollouts notifications: parsing (notifications.py) and ready-to-paste configs."""
