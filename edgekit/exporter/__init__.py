"""The workstation's export side: MODEL → the routes' planned candidates per format and precision → accuracy
gate → measured choice → artifact folder. ``options.export`` is the entry point (``edgekit.export``: the options
merged over edgekit.toml), ``pipeline.export`` runs one export, ``routes/`` declares one module per format and
``steps/`` holds one module per graph transformation."""
