"""The configuration's models that the core and the integrations share (durations, names, policies,
services, shapes, gates, scaling). The whole file is assembled in app/config_file/."""
