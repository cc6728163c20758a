"""Navigation metrics as published, as pure functions over graphs and trajectories."""
