"""`python -m runner`: the same as the `mgrun` command."""

from runner.launch import main

main()
