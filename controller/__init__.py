"""The top layer: the command line, (later) the control loop and daemon, and all wiring.

This is the only package that builds concrete objects (solvers, collectors, actuators)
and hands them to each other. Commands live in `controller/commands/`, one module each.
"""
