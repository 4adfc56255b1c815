"""Systems of record: ports (Protocols) and their adapters (embedded ERP, sandbox gateway,
notifications). Activities and the API depend on the ports; only ``worker.py``,
``api/app.py`` and ``systems/registry.py`` name concrete adapters.
"""
