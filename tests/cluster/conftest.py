"""Cluster tests: the shared qasync loop fixture (tests/conftest.py) serves the nodes panel."""
