"""SEED-RL-style distributed training on Ray: the driver (``driver``: placement, supervision, evaluations), the
learner, its inference server, the actors and evaluation (also of a checkpoint, in process)."""
