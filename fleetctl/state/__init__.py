"""fleetctl's local state: the rollout and revision history (`store`) and the writer lock (`lock`).

Kept free of imports so that taking the lock does not load SQLAlchemy.
"""
