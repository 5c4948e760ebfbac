"""Mutation testing of sessiond: ``make mutate`` (see docs/mutation.md)."""
