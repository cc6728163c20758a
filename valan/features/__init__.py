"""Visual features: stores keyed by (scan or graph, node) (``stores``) and extraction with your CNN (``extraction``)."""

# Perspective crops of equirectangular panoramas (``valan features extract --layout equirect``), degrees. They
# live here, not in ``extraction``, so that building the CLI parser reads them without importing numpy or PIL.
DEFAULT_HEADINGS_DEG = tuple(45.0 * i for i in range(8))  # the Street View environment's default: 8 views
DEFAULT_PITCHES_DEG = (0.0,)
DEFAULT_FOV_DEG = 60.0
