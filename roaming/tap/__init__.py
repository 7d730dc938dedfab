"""
The roaming daemons: the twistd services of C{roaming-sc} (L{roaming.tap.sc})
and C{roaming-ap} (L{roaming.tap.ap}), their data path, control plane, and
the local socket that C{roamctl} reads. docs/operations.md describes how to
run them.
"""
