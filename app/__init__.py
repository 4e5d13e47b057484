"""The application layer: rig assembly from a config file, CLI, GUI and trial log. Observes and commands."""

# The project's version: pyproject.toml reads it from here (one place), `micromanip --version` prints it.
__version__ = "0.1.0"
