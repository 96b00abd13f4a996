"""Example routines for workpath (run by the test suite)."""
