"""The embedded default (`fleetplan up`): the whole closed loop on one machine.

`workers` (local worker processes as an `Actuator`), `example` (the built-in fleet and
load schedule), `session` (wiring router, collector, controller and load generator in one
asyncio program), `view` (the live terminal view), `plots` (the final report's figures).
"""
