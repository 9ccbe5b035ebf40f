"""Recording what happened: events, states, the SQLite store, logs and reports."""
