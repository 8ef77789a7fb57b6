"""The dashboard (``oumi-jobs ui``): login codes and sessions, the pages, their templates and vendored assets."""
