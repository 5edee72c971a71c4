"""The `unlearnd` command line: one module per area, each with a `register(app)`."""
