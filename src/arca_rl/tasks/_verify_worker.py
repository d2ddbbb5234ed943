"""Child process that runs math-verify for `arca_rl.tasks.math.score`.

Run as a script (``runpy.run_path``), never imported by the package: it needs only the standard
library and math-verify, and runs on its own main thread, so math-verify's SIGALRM timeouts work
here. The parent kills this process when an answer takes too long, which bounds even the
operations a signal cannot interrupt (a huge integer power inside sympy).

Protocol: the child writes ``ready`` once, then reads one JSON object per line,
``{"gold": str, "pred": str}`` (answers without the ``\\boxed{}``), and answers each with one line,
``1`` (equal) or ``0``.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# Address-space cap: a sympy blow-up fails with MemoryError instead of swapping the machine.
MEMORY_LIMIT_BYTES = 4 * 1024**3
# math-verify's own (signal based) timeouts, per parse / verify call; the parent's kill is the backstop.
INNER_TIMEOUT_S = 1


def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(hard, MEMORY_LIMIT_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: run without the cap
        pass


def _equal(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=INNER_TIMEOUT_S)
    pred_parsed = parse("\\boxed{" + pred + "}", parsing_timeout=INNER_TIMEOUT_S)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=INNER_TIMEOUT_S))


def main() -> None:
    """Serve comparison requests from stdin until it closes."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing a library prints can corrupt the protocol
    logging.disable(logging.WARNING)  # math-verify logs every timeout and parse failure
    _limit_memory()
    import math_verify  # noqa: F401 - import before announcing readiness

    out.write("ready\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            result = _equal(str(request["gold"]), str(request["pred"]))
        except Exception:  # any failure (MemoryError, RecursionError, a parse error) is "not equal"
            result = False
        out.write("1\n" if result else "0\n")


if __name__ == "__main__":
    main()
