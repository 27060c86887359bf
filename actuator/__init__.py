"""actuator: enacts a plan on the fleet (Kubernetes Deployments or local worker processes).

Not built yet: the Actuator protocol, the Kubernetes and local actuators arrive with the
controller issue. It sits beside `collector` and may import optimizer, tuner,
queue_models and specs.
"""
