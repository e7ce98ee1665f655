"""How good a result is: :mod:`~aetcore.quality.metrics` (errors of volumes and projections, FSC and
resolution) and :mod:`~aetcore.quality.scoring` (atoms against the truth, alignment errors) and :mod:`~aetcore.quality.compare` (one model against
another: ``aet compare``) and :mod:`~aetcore.quality.holdout` (k-fold validation of the refinement
over images: the R1 on images it did not fit).
"""
