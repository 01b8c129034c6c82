"""Publishing hybrid datasets: portable provenance, regeneration from an NWB file, DANDI upload.

* :mod:`hybridkit.publish.from_nwb`   a hybrid NWB's provenance read back; the run config rebuilt
* :mod:`hybridkit.publish.remote`     ``dandi://`` asset names and streamed opening of local/URL/DANDI NWB
* :mod:`hybridkit.publish.dandiset`   the ``dandiset`` metadata section, checked with dandischema
* :mod:`hybridkit.publish.organize`   readable, distinct DANDI file names; dandiset.yaml
* :mod:`hybridkit.publish.upload`     checks, the dandi validator, upload of what changed

The pieces the NWB plugins share with publishing live in ``formats/``:
:mod:`hybridkit.formats.json_pointers` (JSON documents as pointer rows),
:mod:`hybridkit.formats.input_identity` (a run's inputs by identity) and
:mod:`hybridkit.formats.remote_http` (HTTP range-read files, DANDI asset URLs).
"""
