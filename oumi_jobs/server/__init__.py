"""The warm per-user server: ``oumi.launcher`` imported once, the cloud adapter and the REST API served over a
private unix socket (or loopback TCP with a bearer token).  See the README's "The server" section."""
