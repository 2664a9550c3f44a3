"""How a state transaction begins, shared by the SQLite (db.py) and PostgreSQL (pg.py) engines.

The engines' "begin" hooks read `BEGIN_OPTION`: reads use a deferred BEGIN so that
listing history never queues behind (or blocks) a writer in another process."""

BEGIN_OPTION = "fleetctl_begin"
BEGIN_IMMEDIATE = "IMMEDIATE"
BEGIN_DEFERRED = "DEFERRED"
