"""Tests of workload arrival processes and trace readers."""
