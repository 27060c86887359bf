"""Sub-commands of `fleetplan`, one module each (see `controller/cli.py`)."""
