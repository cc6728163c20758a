"""SEED-RL-style distributed training on Ray: learner, inference server, actors, evaluation."""
