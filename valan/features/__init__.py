"""Visual features: stores keyed by (scan or graph, node) (``stores``) and extraction with your CNN (``extraction``)."""
