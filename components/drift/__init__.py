"""Drift: what is on a master compared with what the stack wants (see README "Drift")."""
