"""``hybridkit augment``: training sets of spike snippets over a recording's noise (docs/augment.md).

    neighbourhoods.py  the fixed channel neighbourhood around each centre contact
    noise.py           noise snippets: quiet stretches of the recording, or the Kronecker model
    compose.py         templates rendered into snippets; the five classes' parameters
    h5layout.py        the HDF5 file's datasets and attributes (written batch by batch)
    build.py           augment(cfg): templates through the registry, noise, classes, the file
"""
