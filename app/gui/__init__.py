"""The operator window (PyQt6 + pyqtgraph). It observes and commands; it never runs the control loop."""
