"""The speaker (Fried et al. 2018): instructions generated for R2R paths, for data augmentation."""
