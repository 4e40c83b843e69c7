"""XPCS: X-ray photon correlation spectroscopy — multi-tau g2(q, τ), fits of Γ and D, plots, metadata.

Modules (import the one you need; this package imports nothing heavy, matplotlib least of all):

- :mod:`.qmap` — detector geometry → q map; dynamic/static q partitions.
- :mod:`.measurement` — the HDF5 measurement file: write, read, stream frames.
- :mod:`.synthetic` — speckle with a known Γ = D·q² (seeded), in memory or straight to a file.
- :mod:`.correlate` — streaming multi-tau correlator and symmetric normalisation → g2 curves.
- :mod:`.twotime` — two-time correlation C(t1, t2) and its diagonal average.
- :mod:`.fit` — Γ per q bin (baseline + β·exp(-2Γτ)), D from Γ = D·q², power-law exponent.
- :mod:`.plots` — PNG figures and JSON plot data.
- :mod:`.metadata` — flat metadata dict of a measurement file for a search record.

Typical use::

    from beamlink.apps.xpcs.correlate import correlate_g2
    from beamlink.apps.xpcs.fit import fit_diffusion, fit_g2, reliable_bins
    from beamlink.apps.xpcs.measurement import iter_frames, read_measurement

    m = read_measurement(path, load_frames=False)
    curves = correlate_g2(iter_frames(path), m.partition, frame_interval_s=m.frame_interval_s)
    fit = fit_g2(curves)
    use = reliable_bins(fit, frame_interval_s=m.frame_interval_s, n_frames=m.n_frames)
    d = fit_diffusion(curves.q2, fit.gamma_per_s, fit.gamma_err, where=use)
"""
