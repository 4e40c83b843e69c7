"""SSX: serial synchrotron crystallography — spot finding and hit classification of stills.

Modules (import the one you need; this package imports nothing heavy, matplotlib least of all):

- :mod:`.synthetic` — stills with known Gaussian spots on Poisson background, blank frames, ground truth.
- :mod:`.spotfind` — DIALS dispersion threshold, 4-connected spots, filters, centroids.
- :mod:`.classify` — hit/miss per still (≥ 16 spots) and the per-run summary (hit rate, spots per frame).
- :mod:`.scoring` — recall, precision and centroid error against ground truth.
- :mod:`.plots` — hit-rate figure (PNG) and its JSON plot data.

The app (``beamlink app run ssx``) is built on them:

- :mod:`.inputs` — the run file (HDF5: stills, mask, truth), checked on read with errors naming the file.
- :mod:`.steps` — the flow's endpoint functions: ``find_spots`` (compute) and ``plot`` (non_compute).
- :mod:`.record` — the search record and the portal facets (hit rate, frames, hits, spots, sample).
- :mod:`.app` — the ``App``: transfer in → FindSpots → Plot → GatherMetadata → transfer out → Publish.

Pixel coordinates follow DIALS: pixel [i, j] has its centre at (i + 0.5, j + 0.5).

Typical use::

    from beamlink.apps.ssx.classify import find_spots_run

    result = find_spots_run(stack, mask)      # stack (N, H, W)
    result.summary.hit_rate, result.frames[0].spots.centroid_yx
"""
