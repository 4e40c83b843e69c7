"""Science clients: one package per technique (xpcs, ssx, hedm, ptycho), each with pure kernels and a
synthetic-data generator; the app framework that wires them into flows arrives with its issue."""
