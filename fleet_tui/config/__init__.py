"""What the operator writes and both front ends share: inventory, sweep spec, SSH settings."""
