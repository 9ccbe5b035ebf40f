"""Running a run: the Trio wiring, the executors that run attempts, the persister."""
