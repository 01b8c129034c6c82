"""Publishing hybrid datasets: portable provenance, regeneration from an NWB file, DANDI upload.

* :mod:`hybridkit.publish.pointers`   JSON documents as (JSON pointer, JSON value) rows and back
* :mod:`hybridkit.publish.identity`   a run's inputs named by identity (DANDI ids, else name/size/SHA-256)
* :mod:`hybridkit.publish.from_nwb`   a hybrid NWB's provenance read back; the run config rebuilt
* :mod:`hybridkit.publish.remote`     ``dandi://`` asset names and streamed opening of local/URL/DANDI NWB
* :mod:`hybridkit.publish.dandiset`   the ``dandiset`` metadata section, checked with dandischema
* :mod:`hybridkit.publish.organize`   readable, distinct DANDI file names; dandiset.yaml
* :mod:`hybridkit.publish.upload`     checks, the dandi validator, upload of what changed
"""
