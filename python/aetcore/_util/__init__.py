"""Internal helpers shared by every layer: argument checks (:mod:`~aetcore._util.validate`), memory
estimates (:mod:`~aetcore._util.memory`), the thread pool over images
(:mod:`~aetcore._util.parallel`) and the optional dependencies behind the extras
(:mod:`~aetcore._util.optional`)."""
