"""Pydantic contracts of the workflows: inputs, states, update payloads, process ids.

Importable by the API, the worker and tests; no IO.
"""
