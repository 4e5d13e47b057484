"""Device interfaces, the core contracts every layer builds on, and the real hardware drivers.

This is the bottom layer: it imports nothing from perception/, control/, sim/, calibration/ or app/.
"""
