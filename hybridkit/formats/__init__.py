"""File-format code shared by the core and by more than one plugin: binary blocks, background copies,
SpikeGLX meta, MATLAB files, JRCLUST prm files, probe geometry files, phy folder files and the
hybrid binary's name."""
