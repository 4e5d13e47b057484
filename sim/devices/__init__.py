"""Simulated devices behind the ``drivers`` interfaces, acting on a shared :class:`sim.world.World`."""
