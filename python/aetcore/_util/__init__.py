"""Internal helpers shared by every layer: argument checks (:mod:`~aetcore._util.validate`) and memory
estimates (:mod:`~aetcore._util.memory`)."""
