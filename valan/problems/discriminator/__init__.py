"""Instruction-path discriminator: negatives, pair encoding, ROC-AUC, training, scoring and filtering."""
