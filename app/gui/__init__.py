"""The operator window (Qt through qtpy, pyqtgraph). It observes and commands; it never runs the control loop."""
