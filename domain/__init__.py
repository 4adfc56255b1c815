"""Pure business logic of o2c: money, pricing, credit, order split, invoices.

Nothing here does IO, reads a clock or draws random numbers, so workflows may import it.
"""
