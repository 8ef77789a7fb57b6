"""The store: the only code that reads or writes the registry database."""
