"""Far-field HEDM: synthetic frames over ω, peak search in (ω, y, z) fanned out over frame blocks, plots.

Modules (import the one you need; importing this package imports none of them):

- :mod:`~beamlink.apps.hedm.records` — the JSON-friendly dicts the steps exchange (blocks, pieces, peaks).
- :mod:`~beamlink.apps.hedm.peaksearch` — ``split_blocks`` → ``search_block`` (one Map item) →
  ``merge_blocks``, and ``search_stack`` that runs the three in-process.
- :mod:`~beamlink.apps.hedm.framewise` — MIDAS-style per-frame 2-D search and merge across ω (a cross-check).
- :mod:`~beamlink.apps.hedm.pvfit` — 2-D pseudo-Voigt refinement of peak centres.
- :mod:`~beamlink.apps.hedm.geometry` — Bragg rings, ring threshold maps and the far-field spot forward model.
- :mod:`~beamlink.apps.hedm.synthetic` — seeded generators: blob level and grain level, with ground truth.
- :mod:`~beamlink.apps.hedm.evaluate` — match found peaks to ground truth (recall, centroid errors).
- :mod:`~beamlink.apps.hedm.plots` — PNGs of the summed frame with peaks and of peaks per ω (matplotlib).

The app (``beamlink app run hedm``) is built on them:

- :mod:`~beamlink.apps.hedm.inputs` — the scan file (HDF5: frames, dark, ω axis, threshold, truth), checked
  on read with errors naming the file (and the frame, for a NaN).
- :mod:`~beamlink.apps.hedm.steps` — the flow's endpoint functions: ``split_scan``, ``search_block`` (one Map
  item), ``merge_peaks`` (compute) and ``plot`` (non_compute).
- :mod:`~beamlink.apps.hedm.record` — the search record and its portal facets (peaks, recall, grains, ω).
- :mod:`~beamlink.apps.hedm.app` — the ``App``: transfer in → SplitBlocks → SearchBlocks (a Map over the
  blocks) → MergePeaks → Plot → GatherMetadata → transfer out → Publish.

Conventions used throughout: the stack is ``(frame, y, z)``; frame ``f`` is centred on
``ω_f = omega0 + f·domega`` (degrees); ``y`` and ``z`` are pixel coordinates along stack axes 1 and 2, a
pixel's centre at its integer index.
(MIDAS reverses y, ``YCen = -y + Ycen``; convert at the hand-off if a MIDAS tool reads the peaks.)
"""
