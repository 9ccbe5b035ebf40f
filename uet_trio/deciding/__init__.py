"""Deciding what runs next: plain synchronous code, no Trio, no clock of its own."""
