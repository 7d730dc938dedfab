"""Tests for the daemons, their configuration, roamctl and the metrics."""
