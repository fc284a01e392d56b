"""Numba kernels over plain arrays: no classes, no I/O, no logging."""
