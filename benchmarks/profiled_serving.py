"""gunicorn configuration for profiling a web worker under load: Sluice's own (app/web/serving.py,
so gevent workers and every other setting as users serve it) plus a profiler in each worker.

    SLUICE_PROFILE_DIR=/tmp/prof gunicorn -c benchmarks/profiled_serving.py 'app:create_app()'

For benchmarks only (benchmarks/profile_serving.py drives it); the shipped serving path is untouched.
Each worker starts its profiler once gevent has patched it (`post_worker_init`) and writes what it
saw to SLUICE_PROFILE_DIR when it exits (`worker_exit`, on the master's SIGTERM). SLUICE_PROFILER:

- `sample` (default): every SAMPLE_SECONDS of the process's CPU (ITIMER_PROF: user and system time),
  the stack of whatever greenlet is running is counted (worker-<pid>.stacks, one `count<TAB>stack`
  a line, outermost frame first). A few percent of overhead, so the shares are those of the real
  load; time in C code and the kernel lands on the Python function that called it.
- `yappi`: every call counted and timed (worker-<pid>.pstat). yappi keeps a stack per greenlet
  (`set_context_backend("greenlet")`; cProfile keeps one per thread, and gevent switches greenlets
  inside calls), but its cost per call (several times the work of a small function) inflates
  whatever makes many small calls: use it for call counts, the sampler for shares.

SLUICE_SERVING: the serving configuration to extend (default: this checkout's app/web/serving.py;
another checkout's, to profile that one as it is).
"""

from __future__ import annotations

import collections
import os
import runpy
import signal
from pathlib import Path
from typing import Any

_SERVING = os.environ.get("SLUICE_SERVING") or str(Path(__file__).resolve().parents[1] / "app" / "web" / "serving.py")
# Every setting of the serving configuration (gunicorn reads this module's names), and its side
# effects (its JSON error pages).
globals().update({k: v for k, v in runpy.run_path(_SERVING).items() if not k.startswith("__")})
_OUT = Path(os.environ.get("SLUICE_PROFILE_DIR") or ".")
_PROFILER = os.environ.get("SLUICE_PROFILER", "sample")
SAMPLE_SECONDS = 0.0005
_stacks: collections.Counter[str] = collections.Counter()


def _where(frame: Any) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{code.co_firstlineno}({code.co_name})"


def _sample(_signum: int, frame: Any) -> None:
    names = []
    while frame is not None:
        names.append(_where(frame))
        frame = frame.f_back
    _stacks[";".join(reversed(names))] += 1


def post_worker_init(worker: Any) -> None:
    if _PROFILER == "yappi":
        import yappi

        yappi.set_clock_type("cpu")
        yappi.set_context_backend("greenlet")
        yappi.start(builtins=True)
    else:
        signal.signal(signal.SIGPROF, _sample)
        signal.setitimer(signal.ITIMER_PROF, SAMPLE_SECONDS, SAMPLE_SECONDS)


def worker_exit(server: Any, worker: Any) -> None:
    _OUT.mkdir(parents=True, exist_ok=True)
    if _PROFILER == "yappi":
        import yappi

        yappi.stop()
        yappi.get_func_stats().save(str(_OUT / f"worker-{os.getpid()}.pstat"), type="pstat")
        return
    signal.setitimer(signal.ITIMER_PROF, 0)
    lines = [f"{count}\t{stack}" for stack, count in _stacks.most_common()]
    (_OUT / f"worker-{os.getpid()}.stacks").write_text("\n".join(lines) + "\n")
