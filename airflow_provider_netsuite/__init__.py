"""Apache Airflow provider for Oracle NetSuite: M2M and TBA auth, SuiteQL extracts, record upserts."""

from __future__ import annotations

__version__ = "0.1.0"
