"""
Tests for L{roaming.tunnel}.
"""
