"""dsllm: the command line and local services around the components and flows."""
