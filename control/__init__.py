"""Control: PID axes, visual servoing, the aspiration state machine, and safety checks before motion."""
