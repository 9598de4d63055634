"""Images: loading OCI image layouts and ``docker save`` tarballs into the store, verified.

layertar.py extracts one layer safely; oci_layout.py and docker_archive.py read the two formats
into the same description of an image; store.py registers it as docker does (imagedb, layerdb,
repositories.json) over the overlay2 layer store (../overlay2.py).
"""
