"""
Tests for L{roaming.bridge}: the classifier, the layer-3 database, the
bridge's learning and forwarding scenarios, and its bounds and counters.
"""
