"""The application layer: rig assembly from a config file, CLI, GUI and trial log. Observes and commands."""
