"""Pretraining the follower's instruction and visual encoders on cross-modal alignment and next visual scene."""
