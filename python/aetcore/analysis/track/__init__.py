"""Time series of atomic models of one particle (4D AET): rigid registration, atom correspondence,
per-atom changes, and crystal nuclei found at each time and followed across times.

Modules: :mod:`~aetcore.analysis.track.registration` (:func:`kabsch`, :func:`icp`),
:mod:`~aetcore.analysis.track.correspondence` (:func:`correspond`), :mod:`~aetcore.analysis.track.nuclei`
(:func:`find_nuclei`, :func:`link_nuclei`), :mod:`~aetcore.analysis.track.series` (:func:`track_series`),
:mod:`~aetcore.analysis.track.plots` (figures); the body of ``aet track``, :func:`track_folders`, is
:mod:`aetcore.app.track` (also importable from here).

Every model is a set of atom positions in Å in its own object frame (x, y, z). The models are
registered one after the other onto the previous, already registered model (:func:`icp`: trimmed
ICP, restarted on a rotation grid within 30° when it lands in a wrong optimum), so every result is
in the frame of the first model. Atoms are paired one-to-one between consecutive models
(:func:`correspond`: exact minimum-cost matching on the sparse candidate pairs). Nuclei
(:func:`find_nuclei`) are ordered atoms (order parameter from :mod:`aetcore.analysis.bond_order` or
given) grouped by steepest ascent of the order parameter onto cores of highly ordered atoms; they are
linked between times through the paired atoms.

Nucleus events between consecutive times ``t -> t+1`` (the rules of :func:`link_nuclei`):

* a nucleus ``p`` at ``t`` and ``q`` at ``t+1`` are *linked* when at least ``min_overlap`` of the
  atoms of the smaller of the two are paired with atoms of the other;
* linked nuclei form connected groups; a group with one nucleus on each side is ``growth`` if the
  size grows by at least ``max(min_change, rel_change × size_t)`` atoms, ``shrinkage`` if it falls by
  that much, ``stable`` otherwise; one nucleus into several is ``division``; several into one is
  ``merging``; several into several is ``merging+division``; a nucleus without partner at ``t+1`` is
  ``dissolution``, one without partner at ``t`` is ``nucleation``.

A *track* is a chain of one-to-one links (growth, shrinkage, stable); division, merging and
nucleation start new tracks. Each track gets a *fate*: ``division``, ``merging`` or ``dissolution``
if it ends in that event (``merging+division`` counts as merging); else, lasting to the last time, ``growth`` if it grew by the tolerance above
(measured on its first size) and never shrank, ``fluctuation`` otherwise; ``undetermined`` if it
exists at the last time only.
"""
from .registration import Registration, icp, kabsch
from .correspondence import Correspondence, correspond
from .nuclei import EVENTS, find_nuclei, link_nuclei
from .series import FATES, TrackResult, track_series

__all__ = ["Registration", "kabsch", "icp", "Correspondence", "correspond", "find_nuclei", "link_nuclei",
           "TrackResult", "track_series", "track_folders", "EVENTS", "FATES"]


def __getattr__(name):
    if name == "track_folders":  # the folder runner lives with the other runners, in app/
        from ...app.track import track_folders
        return track_folders
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
