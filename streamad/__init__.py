"""streamad: a streaming anomaly monitor for sound and signals."""
__version__ = "0.1.0"
