"""The version of the JSON contract (README "JSON").

Below both its builders: the rendering layer (``render/``), and the store's
lean projection of finished local jobs (``store/listing.py``), which must
write the same version into the documents SQLite builds.
"""

SCHEMA_VERSION = 1
