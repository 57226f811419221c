"""Bench model: instrument interfaces, safety limits and station files."""
