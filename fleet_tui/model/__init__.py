"""Pure records shared by every layer: states, exit codes, cell keys, gate verdicts. No I/O."""
