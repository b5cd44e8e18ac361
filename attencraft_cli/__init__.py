"""The `attencraft` command: the composition root that wires the core, the service and the worker together."""
