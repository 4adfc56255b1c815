"""Deterministic orchestration: one module and one workflow class per process.

Nothing here does IO or reads the wall clock; steps run as activities through
``workflows.steps.StepRunner`` and time comes from ``workflows.clock.ProcessClock``.
"""
