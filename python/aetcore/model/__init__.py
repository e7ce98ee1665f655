"""The physical model: :mod:`~aetcore.model.geometry` (Euler angles, the rotation and projection
conventions), :mod:`~aetcore.model.projection` (forward and back projection of volumes and atoms) and
:mod:`~aetcore.model.simulate` (nanoparticles, tilt series and ground-truth volumes).
"""
