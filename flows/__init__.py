"""Prefect flows: wire the stages, pass artifact URIs, log to MLflow. No ML logic here."""
