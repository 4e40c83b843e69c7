"""Far-field ptychography: a seeded synthetic scan, ePIE / rPIE / DM reconstruction, comparison, plots.

Modules (import the one you need; importing this package imports none of them):

- :mod:`~beamlink.apps.ptycho.forward` — views, exit waves, far field, modulus projection, data error.
- :mod:`~beamlink.apps.ptycho.synthetic` — known object, probe and raster scan; Poisson-noisy intensities.
- :mod:`~beamlink.apps.ptycho.reconstruct` — ePIE, rPIE (with probe refinement) and the difference map.
- :mod:`~beamlink.apps.ptycho.compare` — illuminated mask, global-phase and phase-ramp removal, NRMSE.
- :mod:`~beamlink.apps.ptycho.plots` — PNG of object and probe amplitude and phase (matplotlib).

The ``ptycho`` app (``beamlink app run ptycho``) is built on them:

- :mod:`~beamlink.apps.ptycho.inputs` — the scan file (HDF5), checked on read; the app's synthetic example.
- :mod:`~beamlink.apps.ptycho.steps` — the flow's compute steps: reconstruct and compare, plot.
- :mod:`~beamlink.apps.ptycho.record` — the search record and the index's portal facets.
- :mod:`~beamlink.apps.ptycho.app` — the app: its tools, input and example.

Conventions: the object is ``(n0, n1)`` complex; a scan position is the integer top-left corner ``(row, col)``
of the ``(m0, m1)`` probe window on the object; diffraction patterns are ``|FFT2(ψ)|²`` with the unnormalised
NumPy FFT and the zero frequency at ``[0, 0]`` (apply ``np.fft.fftshift`` only for display or for packages
that want it centred).
"""
