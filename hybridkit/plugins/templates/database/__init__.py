"""The ``template_database`` source (source) over an HTTP cache and zarr v2 reader (zarr_http)."""
