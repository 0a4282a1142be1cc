"""The library: one package per stage, plain functions, no Prefect."""
