"""
Tests for L{roaming.codec}.
"""
