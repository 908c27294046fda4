"""Edge workers for one cashierless store: sensors in, one virtual cart per visit out."""

__version__ = "0.1.0"
