"""The real-time path from frames to 3-D estimates (detections, tracks, target, depth, tip)."""
