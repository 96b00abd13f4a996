"""The workpath test suite."""
