"""The digital twin: a physically grounded simulated rig behind the same device interfaces as hardware."""
