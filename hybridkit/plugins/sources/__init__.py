"""Source readers: SpikeGLX, flat binary, NWB."""
