"""The workstation's export side: MODEL → candidates per format and precision → accuracy gate → measured
choice → artifact folder. ``pipeline.export`` is the entry point (``edgekit.export``); ``steps/`` holds one module
per graph transformation."""
