"""Trajectory storage, goal samplers and (later) dataset loaders."""
