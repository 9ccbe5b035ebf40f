"""What runs attempts: the executor protocol and its implementations."""
