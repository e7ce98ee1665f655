"""What runs the steps on files and folders: :mod:`~aetcore.app.config` (the TOML configuration and its
defaults), :mod:`~aetcore.app.folder` (``aetcore.run`` and the per-step commands: a results folder),
:mod:`~aetcore.app.batch` (many datasets on Dask), :mod:`~aetcore.app.analyze` (``aet analyze``),
:mod:`~aetcore.app.track` (``aet track``),
:mod:`~aetcore.app.demo` (``aet demo``) and
:mod:`~aetcore.app.cli` (the ``aet`` command line: every argparse parser).
"""
