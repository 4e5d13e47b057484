"""Coordinate transforms between camera pixels, the stage and the manipulator, and the routines that fit them."""
