from dsllm.cli import main

main()
