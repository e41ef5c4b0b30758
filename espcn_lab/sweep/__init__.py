"""Sweeps: W&B sweep files checked against the config schema, their parameter space, the local runner
and its report.

Rule: imports ``config`` and ``errors`` only; trials are real ``espcn-lab fit`` processes, so this package
never imports ``train``.
"""
