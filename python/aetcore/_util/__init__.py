"""Internal helpers shared by every layer: argument checks (:mod:`~aetcore._util.validate`), memory
estimates (:mod:`~aetcore._util.memory`) and the thread pool over images
(:mod:`~aetcore._util.parallel`)."""
