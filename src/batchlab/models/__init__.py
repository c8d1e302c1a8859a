"""Built-in models: the registry that builds them (``registry``), their architecture
descriptions without torch (``architecture``) and ghost batch normalization (``ghost_bn``).

Nothing is imported here, so reading a model's description does not load torch."""
