"""The core: the shared models, the configuration's models, names, and the pure decision and
judgement code. No I/O; it imports nothing else of the project (lint-imports checks it)."""
