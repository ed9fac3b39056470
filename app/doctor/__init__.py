"""`sluice doctor`: checks that the configuration's outside systems answer as Sluice needs."""
