"""Inputs: the I/O around each parser. Each owns its connections and reconnects."""
