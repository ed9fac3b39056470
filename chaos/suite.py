"""The chaos run: one stack for every fault, the faults one after another, the fuzz run beside them."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from chaos import fuzz
from chaos.faults import Fault
from chaos.harness import FaultResult, phase_services, run_phase
from chaos.receiver import HookReceiver
from chaos.stack import ChaosStack


def run(
    faults: list[Fault],
    workdir: Path,
    say: Callable[[str], None] = print,
    fuzz_examples: int = 0,
) -> tuple[list[FaultResult], tuple[bool, str, float] | None]:
    receiver = HookReceiver().start()
    services = [s for f in faults for s in phase_services(f)]
    stack = ChaosStack(workdir, services, receiver.url, secrets.token_hex(16), say=say)
    fuzzing = None
    results: list[FaultResult] = []
    try:
        stack.start()
        if fuzz_examples:
            fuzzing = fuzz.start(workdir, fuzz_examples)
            say(f"fuzz: {fuzz_examples} generated requests running beside the faults")
        for fault in faults:
            say(f"== {fault.name}: {fault.fault}")
            result = run_phase(fault, stack, receiver, say)
            results.append(result)
            say(f"== {fault.name}: {'pass' if result.passed else 'FAIL'} in {result.seconds:.0f}s")
        fuzzed = fuzzing.result() if fuzzing else None
    finally:
        if fuzzing and fuzzing.proc.poll() is None:
            fuzzing.proc.kill()
        stack.stop()
        receiver.stop()
    return results, fuzzed
