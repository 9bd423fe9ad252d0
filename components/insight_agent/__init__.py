"""The insight-agent: which Helm values to set (plan, chart, collect, fluent_bit, helm_state: pure) and the
component that sets them (component.py) and checks the result (check.py). Empty on purpose: importing the
pure planning must not load pulumi."""
