"""Problems: an environment factory, an agent factory, losses and metrics bound together (VALAN's ProblemType).

``valan train`` looks a problem up by the config's ``problem`` name, so R2R, Touchdown and the discriminator
share one training machinery.
"""
