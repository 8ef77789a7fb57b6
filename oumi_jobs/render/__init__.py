"""The rendering layer: every JSON document of the contract, built from the core's results, one module per area.

It sits above the core (which never imports it) and below its front ends (the
command line, the REST server, the library facade), which all serve the very
same objects.  Each module imports the result types of its area at run time.
"""
