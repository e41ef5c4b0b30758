"""Trial processes of a local sweep: started in a session of their own, stopped in order with the sweep.

A trial (``espcn-lab fit``) runs in its own session, so a Ctrl-C in the sweep's terminal reaches the
sweep alone, which passes exactly one signal on: the trial's first SIGINT/SIGTERM/SIGHUP saves ``last.ckpt`` and
``summary.json``, a second would end it without them. The sweep waits ``timeout`` seconds for that, then
kills what is left. On Linux a trial is also told to stop (SIGTERM) if the sweep itself is killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from espcn_lab.errors import STOP_SIGNALS

STOP_TIMEOUT_S = 60.0  # a trial's graceful stop: finish the step (or a validation pass), save, summarise


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_trial(argv: list[str], env: dict, log) -> subprocess.Popen:
    """Start one trial writing to ``log``, in its own session."""
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)


class SweepSignals:
    """SIGINT/SIGTERM/SIGHUP handlers that only count: the sweep loop looks at ``signum`` between polls (no
    exception can land between starting a trial and recording it). A signal ignored at start stays ignored."""

    def __init__(self) -> None:
        self.signum, self.count = 0, 0
        self._saved: dict[int, object] = {}

    def _handle(self, signum: int, _frame) -> None:
        self.signum, self.count = self.signum or signum, self.count + 1
        print(f"\nespcn-lab: sweep: {signal.Signals(signum).name}: stopping the running trial(s) "
              "(send it again to kill them)", file=sys.stderr, flush=True)

    def __enter__(self) -> "SweepSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._saved[signum] = signal.getsignal(signum)
                if self._saved[signum] is not signal.SIG_IGN:
                    signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def stop_trials(procs: list[subprocess.Popen], signum: int, signals: SweepSignals,
                timeout: float = STOP_TIMEOUT_S) -> None:
    """Pass ``signum`` to every trial, wait up to ``timeout`` s (less if signalled again), then kill the rest."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signum)
    deadline, count = time.monotonic() + timeout, signals.count
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline and signals.count == count:
        time.sleep(0.05)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
