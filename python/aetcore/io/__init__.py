"""Files: reading tilt series, their metadata and angles (:mod:`~aetcore.io.readers`), writing atoms,
volumes, arrays and summaries atomically (:mod:`~aetcore.io.writers`), and the results folder's step
files and ``results.h5`` groups (:mod:`~aetcore.io.results`, the one reader and writer of that
layout) and atomic models of other codes (:mod:`~aetcore.io.models`: ``.xyz``, ``.mat``, CSV). The readers and writers are re-exported here: ``aetcore.io.read_tilts`` and so on.
"""
from .readers import TILT_SUFFIXES, check_angles, read_angles, read_atoms, read_tilt_metadata, read_tilts
from .writers import atomic_path, write_angles, write_json, write_mrc, write_npy, write_xyz

__all__ = ["read_tilts", "read_tilt_metadata", "read_angles", "check_angles", "read_atoms", "write_xyz",
           "write_mrc", "write_json", "write_npy", "write_angles", "atomic_path", "TILT_SUFFIXES"]
