"""The learning core, free of Ray and of any task: V-trace, losses, the typed Unroll, ``train_step``, the RL config
sections, and the one supervised loop (``supervised``)."""
