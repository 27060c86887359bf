"""Tests of the discrete-event twin (simulator)."""
