"""The front door server: one URL per host for every model of the fleet (docs/front-door.md)."""
