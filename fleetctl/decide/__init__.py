"""Decision support over the inventory and its offline plan: `advise` and `report`."""
