"""Small helpers of the Airflow layer."""
