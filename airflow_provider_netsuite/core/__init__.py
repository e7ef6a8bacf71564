"""Plain-Python core of the NetSuite provider: accounts, keys, tokens, HTTP client. No Airflow imports."""
