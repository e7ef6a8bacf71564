"""A NetSuite emulator for tests and benchmarks: token endpoint, SuiteQL, governance, admin endpoints.

It plays NetSuite over HTTP and shares no code with the provider's client side. Start it with
``python -m airflow_provider_netsuite.emulator serve --state-dir DIR``.
"""

from __future__ import annotations
