from dsllm.cli import app

app()
