"""Routing and packing problems (TSP, CVRP, OP, KP) as tasks of one neural solver."""
