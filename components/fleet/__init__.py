"""`python -m components fleet preview|up|status`: many stacks of this project, previewed and rolled out in waves.

Pure parts (no pulumi import): spec (the fleet file, selection, shards), classify (engine events to a
per-stack verdict), rollout (waves, stop on failure, resume) and report (tables, JSON, progress).
The Automation API is used only in engine.py; cli.py ties them together.
"""
